"""One module per stage. Stage 1 works on its whole batch at once; stages 2-6 item by item."""

from stage_workers.stages.articles import ArticlesStep
from stage_workers.stages.ideas import IdeasStep
from stage_workers.stages.images import ImagesStep
from stage_workers.stages.prompts import PromptsStep
from stage_workers.stages.tasks import TasksStep

ITEM_STEPS = {2: IdeasStep(), 3: TasksStep(), 4: ArticlesStep(), 5: PromptsStep(), 6: ImagesStep()}
