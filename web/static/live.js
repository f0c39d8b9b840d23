// The live connection of a page to the service: one websocket per service origin speaking
// graphql-transport-ws (connection_init / connection_ack / subscribe / next / complete),
// every subscription sent again after each reconnection, and, while the socket is not
// acknowledged, a poll of a cacheable GET /graphql every few seconds.
//
//   const live = connect("https://petitions.example.org");
//   const stop = live.subscribe(QUERY, { id }, (data) => ...);   // stop() ends it
//   const halt = live.poll(QUERY, { slug }, (data, live) => ...); // while disconnected
//   await live.query(QUERY, { slug });                           // once, over GET
//
// Reconnection backs off exponentially with jitter, capped at 5 s, so a page finds the
// service again within seconds of its return; polls run all the while.

const POLL_EVERY = 4000;
const MAX_DELAY = 5000;
const ACK_WITHIN = 5000;
const QUIET_FOR = 25000; // no message for this long: the socket is presumed dead
const PING_EVERY = 10000;
const connections = new Map();

/** The shared connection to the service at `origin` (default: this page's). */
export function connect(origin = location.origin) {
  let live = connections.get(origin);
  if (!live) connections.set(origin, (live = new Live(origin)));
  return live;
}

export class Live {
  constructor(origin) {
    this.origin = origin;
    this.subscriptions = new Map(); // id -> {query, variables, next}
    this.polls = new Set(); // {query, variables, then}
    this.serial = 0;
    this.tries = 0;
    this.acked = false;
    this.socket = null;
    this.timers = [];
  }

  /** Whether updates arrive over the socket now (polls are idle meanwhile). */
  get connected() {
    return this.acked;
  }

  subscribe(query, variables, next) {
    const id = String(++this.serial);
    this.subscriptions.set(id, { query, variables, next });
    if (this.acked) this.send({ id, type: "subscribe", payload: { query, variables } });
    this.start();
    return () => {
      if (this.subscriptions.delete(id) && this.acked) this.send({ id, type: "complete" });
      this.stopIfIdle();
    };
  }

  poll(query, variables, then) {
    const poll = { query, variables, then };
    this.polls.add(poll);
    this.start();
    return () => {
      this.polls.delete(poll);
      this.stopIfIdle();
    };
  }

  async query(query, variables) {
    const url = new URL("/graphql", this.origin);
    url.searchParams.set("query", query);
    url.searchParams.set("variables", JSON.stringify(variables));
    const response = await fetch(url, { cache: "no-cache" });
    const body = await response.json();
    if (!body.data) throw new Error(body.errors?.[0]?.message || `HTTP ${response.status}`);
    return body.data;
  }

  // The socket

  start() {
    if (this.timers.length) return;
    this.timers = [
      setInterval(() => this.acked || this.pollAll(), POLL_EVERY),
      setInterval(() => this.watch(), PING_EVERY),
    ];
    this.open();
  }

  stopIfIdle() {
    if (this.subscriptions.size || this.polls.size) return;
    this.timers.forEach(clearInterval);
    this.timers = [];
    clearTimeout(this.retry);
    const socket = this.socket;
    this.socket = null;
    this.acked = false;
    socket?.close(1000);
  }

  open() {
    if (!this.timers.length) return;
    const url = new URL("/graphql", this.origin);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(url, "graphql-transport-ws");
    } catch {
      return this.closed(null);
    }
    this.socket = socket;
    this.heard = Date.now();
    socket.onopen = () => this.send({ type: "connection_init" });
    socket.onmessage = (event) => this.receive(socket, event.data);
    socket.onclose = () => this.closed(socket);
    const unacked = setTimeout(() => this.acked || socket.close(), ACK_WITHIN);
    socket.addEventListener("close", () => clearTimeout(unacked));
  }

  receive(socket, text) {
    if (socket !== this.socket) return;
    this.heard = Date.now();
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    const { type, id, payload } = message;
    if (type === "connection_ack") {
      this.acked = true;
      this.tries = 0;
      for (const [id, { query, variables }] of this.subscriptions)
        this.send({ id, type: "subscribe", payload: { query, variables } });
      this.pollAll(); // catch up on what went by while disconnected
    } else if (type === "next") {
      if (payload?.data) this.subscriptions.get(id)?.next(payload.data);
    } else if (type === "ping") {
      this.send({ type: "pong" });
    }
    // "error" and "complete" end one subscription; the page's polls still cover it.
  }

  closed(socket) {
    if (socket && socket !== this.socket) return;
    this.socket = null;
    this.acked = false;
    if (!this.timers.length) return;
    this.pollAll();
    const delay = Math.min(MAX_DELAY, 250 * 2 ** this.tries++);
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.open(), delay / 2 + (Math.random() * delay) / 2);
  }

  watch() {
    if (!this.acked) return;
    if (Date.now() - this.heard > QUIET_FOR) this.socket?.close();
    else this.send({ type: "ping" });
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  pollAll() {
    for (const poll of this.polls)
      this.query(poll.query, poll.variables).then(
        (data) => this.polls.has(poll) && poll.then(data, this),
        () => {}, // the service is away: the next poll will tell
      );
  }
}
