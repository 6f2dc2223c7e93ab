// A run's live snapshots over server-sent events: `runs/{id}/events?snapshot=true` sends, after
// the run's past and after each of its events, the run and its current stage as `run.snapshot`
// ({run, processing}), and `run.finished` for a finished run it cannot replay. The browser
// reconnects by itself with Last-Event-ID (the server folds what it does not resend); if it
// gives up, the stream is opened anew after a pause. While it is down the caller is told, so it
// can poll slowly until it is back. The stream closes once a snapshot's run is not active.
const REOPEN_MS = [1000, 2000, 5000, 10000];

export class RunStream {
  constructor(runId, active, { onSnapshot, onUp, onDown }) {
    this.runId = runId;
    this.active = active;
    this.handlers = { onSnapshot, onUp, onDown };
    this.failures = 0;
    this.down = false;
    this.closed = false;
    this.open();
  }

  open() {
    const run = encodeURIComponent(this.runId);
    const source = new EventSource(`/api/v1/automation/runs/${run}/events?snapshot=true`);
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.down = false;
      this.handlers.onUp();
    };
    source.onerror = () => this.dropped(source);
    source.addEventListener("run.snapshot", (message) => {
      const snapshot = JSON.parse(message.data);
      if (!this.active.has(snapshot.run.status)) this.close();
      this.handlers.onSnapshot(snapshot);
    });
    source.addEventListener("run.finished", () => {
      this.close();
      this.handlers.onSnapshot(null);
    });
  }

  dropped(source) {
    if (this.closed) return;
    this.down = true;
    this.handlers.onDown();
    if (source.readyState === EventSource.CLOSED) {
      const wait = REOPEN_MS[Math.min(this.failures, REOPEN_MS.length - 1)];
      this.failures += 1;
      this.timer = setTimeout(() => { if (!this.closed) this.open(); }, wait);
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
  }
}
