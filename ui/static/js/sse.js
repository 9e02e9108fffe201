// sse.js follows GET /events: Server-Sent Events read with fetch() (so that
// the key goes in a header, which EventSource cannot send), parsed as the
// HTML standard says, resumed from the last event id after a loss, with a
// watchdog for a connection that silently stopped.

import {headers, url, HttpError} from './api.js';

// The registry writes a comment every 15 s on an idle stream: silence for
// longer than this means the connection is dead.
const silence = 40000;

// A Stream calls onEvent(kind, data, id) for each event and onState(state,
// info) when it connects ("live"), loses the stream ("lost", with since and
// retryIn in ms) or is refused for want of a key ("key").
export class Stream {
  constructor({onEvent, onState}) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = '';
    this.ctl = null;
    this.running = false;
    this.wake = null; // resolves the wait before a retry
  }

  // start follows the events after index id ('' for from now on).
  start(id) {
    this.stop();
    this.lastId = id === undefined ? '' : String(id);
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    if (this.ctl) this.ctl.abort();
    if (this.wake) this.wake();
  }

  // retryNow ends the wait before the next attempt.
  retryNow() {
    if (this.wake) this.wake();
  }

  async loop() {
    let backoff = 1000;
    let lostSince = null;
    const me = (this.gen = (this.gen || 0) + 1);
    while (this.running && this.gen === me) {
      const ctl = (this.ctl = new AbortController());
      let gotData = false;
      try {
        const h = headers({Accept: 'text/event-stream'});
        if (this.lastId !== '') h['Last-Event-ID'] = this.lastId;
        const res = await fetch(url('events'), {headers: h, signal: ctl.signal, cache: 'no-store'});
        if (!res.ok) {
          const err = new HttpError(res.status, res.statusText);
          if (err.auth) {
            this.onState('key', {});
            return; // the page restarts the stream once it has a key
          }
          throw err;
        }
        lostSince = null;
        backoff = 1000;
        this.onState('live', {});
        await this.read(res.body, ctl, () => (gotData = true));
        if (!this.running || this.gen !== me) return;
        throw new Error('the stream ended');
      } catch (e) {
        if (!this.running || this.gen !== me) return;
        if (gotData) backoff = 1000;
        lostSince = lostSince || new Date();
        this.onState('lost', {since: lostSince, retryIn: backoff, error: String(e && e.message ? e.message : e)});
        await new Promise((resolve) => {
          const t = setTimeout(resolve, backoff);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = null;
        backoff = Math.min(backoff * 2, 15000);
      }
    }
  }

  // read parses the stream until it ends or goes silent.
  async read(body, ctl, progressed) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let timer = setTimeout(() => ctl.abort(), silence);
    let buf = '';
    let kind = '';
    let data = [];
    let id = null;
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) return;
        clearTimeout(timer);
        timer = setTimeout(() => ctl.abort(), silence);
        progressed();
        buf += value;
        let nl;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          if (buf[nl] === '\r' && nl === buf.length - 1) break; // a \n may follow in the next chunk
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
          if (line === '') {
            // Dispatch: the id counts even for an event without data.
            if (id !== null) this.lastId = id;
            if (data.length > 0) this.onEvent(kind || 'message', data.join('\n'), this.lastId);
            kind = '';
            data = [];
            id = null;
            continue;
          }
          if (line[0] === ':') continue; // a comment: keep-alive
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let v = colon < 0 ? '' : line.slice(colon + 1);
          if (v[0] === ' ') v = v.slice(1);
          if (field === 'event') kind = v;
          else if (field === 'data') data.push(v);
          else if (field === 'id' && !v.includes('\0')) id = v;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
