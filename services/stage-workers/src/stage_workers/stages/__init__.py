"""One module per stage, each a `Step` of the item pipeline (batch.py). Stage 1's unit of work is
its whole batch (one AI call clusters the keywords); stages 2-6 work item by item."""

from stage_workers.stages.articles import ArticlesStep
from stage_workers.stages.clusters import ClustersStep
from stage_workers.stages.ideas import IdeasStep
from stage_workers.stages.images import ImagesStep
from stage_workers.stages.prompts import PromptsStep
from stage_workers.stages.tasks import TasksStep

ITEM_STEPS = {
    1: ClustersStep(),
    2: IdeasStep(),
    3: TasksStep(),
    4: ArticlesStep(),
    5: PromptsStep(),
    6: ImagesStep(),
}
