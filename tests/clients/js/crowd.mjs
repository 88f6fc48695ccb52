// Many sockets of the official socket.io-client in one node process, remote-controlled by
// Python (tests/support/js_crowd.py): the reconnect-storm test and bench/socket_capacity.py.
//
// Commands arrive on stdin as JSON lines {id, op, ...}; each gets one reply {reply: id, ...}
// (or {reply: id, failure} when the op threw). Sockets are numbered in the order they were
// asked for since the last `close`; a refused or failed one stays in the list as closed.
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const sockets = [];
const dropped = {}; // disconnects the server or the network caused, by reason
const fanout = { seq: -1, started: 0, latencies: [], expected: 0, done: null };

const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function summary(values) {
  if (values.length === 0) return { count: 0, p50: null, p99: null, max: null };
  const sorted = Float64Array.from(values).sort();
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return { count: sorted.length, p50: at(50), p99: at(99), max: sorted[sorted.length - 1] };
}

function bump(counts, key) {
  counts[key] = (counts[key] || 0) + 1;
}

// Run fn(item) over items with at most `pace` in flight (0: all at once).
async function paced(items, pace, fn) {
  if (!pace) return Promise.all(items.map(fn));
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(pace, items.length) }, worker));
  return results;
}

function onMessage(data) {
  const body = data && typeof data.body === "string" ? data.body : "";
  if (!body.startsWith("fanout:")) return;
  const seq = Number(body.slice(7).split(":", 1)[0]);
  if (seq !== fanout.seq) return; // a late copy of an earlier message
  fanout.latencies.push(performance.now() - fanout.started);
  if (fanout.latencies.length >= fanout.expected && fanout.done) fanout.done();
}

function openOne(url, token, transports, timeout) {
  return new Promise((resolve) => {
    const began = performance.now();
    const socket = io(url, {
      auth: { token },
      transports,
      upgrade: false,
      reconnection: false,
      forceNew: true,
      timeout,
    });
    const entry = { socket, open: false };
    sockets.push(entry);
    socket.on("message", onMessage);
    socket.once("connect", () => {
      entry.open = true;
      resolve({ ok: true, ms: performance.now() - began });
    });
    socket.once("connect_error", (err) => {
      socket.close();
      const code = err.data && err.data.code ? err.data.code : `transport: ${err.message}`;
      resolve({ ok: false, code });
    });
    socket.on("disconnect", (reason) => {
      if (!entry.open) {
        // Closed before the connect was answered (no connect_error comes then).
        resolve({ ok: false, code: `closed before connect: ${reason}` });
      } else if (reason !== "io client disconnect") {
        bump(dropped, reason);
      }
      entry.open = false;
    });
  });
}

const ops = {
  // Open one socket per token (urls taken in turn), `pace` connects in flight at most
  // (0: every one at the same moment).
  async open({ urls, tokens, transports = ["websocket"], pace = 0, timeout = 30000 }) {
    const began = performance.now();
    const outcomes = await paced(tokens, pace, (token, index) =>
      openOne(urls[index % urls.length], token, transports, timeout),
    );
    const refused = {};
    const connectMs = [];
    for (const outcome of outcomes) {
      if (outcome.ok) connectMs.push(outcome.ms);
      else bump(refused, outcome.code);
    }
    return {
      connected: connectMs.length,
      refused,
      seconds: (performance.now() - began) / 1000,
      connect_ms: summary(connectMs),
    };
  },
  // Every open socket (or those from `first` to `last`) emits `event` with `data` and waits
  // for its ack; answers the acks' outcomes by error code.
  async emit_all({ event, data, pace = 0, timeout = 30000, first = 0, last = null }) {
    const began = performance.now();
    const chosen = sockets.slice(first, last === null ? undefined : last).filter((s) => s.open);
    const outcomes = {};
    await paced(chosen, pace, async (entry) => {
      try {
        const ack = await entry.socket.timeout(timeout).emitWithAck(event, data);
        bump(outcomes, ack && ack.ok ? "ok" : (ack && ack.error && ack.error.code) || "bad ack");
      } catch (err) {
        bump(outcomes, "timeout");
      }
    });
    return { outcomes, seconds: (performance.now() - began) / 1000 };
  },
  // One socket's emit and its ack.
  async emit({ index, event, data, timeout = 30000 }) {
    return { ack: await sockets[index].socket.timeout(timeout).emitWithAck(event, data) };
  },
  // `messages` messages from socket `sender` to `room_id`, one at a time: for each, the time
  // from the send until each of `expected` sockets received it (the sender's own copy too).
  async fanout({ sender, room_id, messages, expected, timeout = 30000, pause = 50 }) {
    const all = [];
    const last = [];
    let lost = 0;
    for (let seq = 0; seq < messages; seq++) {
      fanout.seq = seq;
      fanout.latencies = [];
      fanout.expected = expected;
      const complete = new Promise((resolve) => (fanout.done = resolve));
      fanout.started = performance.now();
      const ack = await sockets[sender].socket
        .timeout(timeout)
        .emitWithAck("send_message", { room_id, body: `fanout:${seq}:${Date.now()}` });
      if (!ack || !ack.ok) throw new Error(`send_message refused: ${JSON.stringify(ack)}`);
      await Promise.race([complete, sleep(timeout)]);
      fanout.done = null;
      lost += Math.max(0, expected - fanout.latencies.length);
      for (const value of fanout.latencies) all.push(value);
      if (fanout.latencies.length) last.push(Math.max(...fanout.latencies));
      await sleep(pause);
    }
    fanout.seq = -1;
    return { deliveries: summary(all), complete: summary(last), lost };
  },
  // Disconnect every socket, `pace` at a time (0: all at once), and forget them all: the
  // next `open` numbers its sockets from 0 again.
  async close({ pace = 0 }) {
    const began = performance.now();
    const open = sockets.filter((s) => s.open);
    await paced(open, pace, async (entry) => {
      entry.open = false;
      entry.socket.disconnect();
    });
    for (const entry of sockets.splice(0)) entry.socket.off();
    return { closed: open.length, seconds: (performance.now() - began) / 1000 };
  },
  async stats() {
    return {
      open: sockets.filter((s) => s.open).length,
      dropped,
      rss: process.memoryUsage().rss,
    };
  },
};

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const { id, op, ...args } = JSON.parse(line);
  try {
    send({ reply: id, ...(await ops[op](args)) });
  } catch (err) {
    send({ reply: id, failure: String(err && err.stack ? err.stack : err) });
  }
});
lines.on("close", async () => {
  for (const entry of sockets) entry.socket.disconnect();
  await sleep(100);
  process.exit(0);
});
