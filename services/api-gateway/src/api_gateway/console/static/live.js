// A run's live events over server-sent events. The browser reconnects by itself with
// Last-Event-ID; if it gives up, the stream is opened anew after a pause. While it is down the
// caller is told, so it can poll slowly until it is back. A stream opened anew replays events
// already seen: the caller's handling of an event must not care. The event types and the run's
// endings come from the server's vocabulary (GET vocabulary).
const REOPEN_MS = [1000, 2000, 5000, 10000];

export class RunStream {
  constructor(runId, vocabulary, { onEvent, onUp, onDown }) {
    this.runId = runId;
    this.types = [...vocabulary.event_types, "run.finished"];
    this.endings = new Set([...Object.keys(vocabulary.run_endings), "run.finished"]);
    this.handlers = { onEvent, onUp, onDown };
    this.failures = 0;
    this.down = false;
    this.closed = false;
    this.open();
  }

  open() {
    const source = new EventSource(`/api/v1/automation/runs/${encodeURIComponent(this.runId)}/events`);
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.handlers.onUp(this.down);
      this.down = false;
    };
    source.onerror = () => this.dropped(source);
    for (const type of this.types) {
      source.addEventListener(type, (message) => this.receive(type, message));
    }
  }

  receive(type, message) {
    const event = JSON.parse(message.data);
    this.handlers.onEvent(type, event);
    if (this.endings.has(type)) this.close();
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
