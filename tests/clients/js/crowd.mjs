// Many sockets of the official socket.io-client in one node process, remote-controlled by
// Python (tests/support/js_client.py, JsCrowd): the reconnect-storm test,
// bench/socket_capacity.py, and the chatting members of the cluster harness
// (bench/harness/cluster.py: `members`, `join`, `chat`, `report`), which follow the
// reconnect recipe of docs/websockets.md.
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


// -- members: sockets that follow the reconnect recipe of docs/websockets.md -------------------
// Each joins its rooms, rejoins them with `since` after every reconnect, takes the join ack in
// its callback, drops a seq it already holds, reconnects after a drain's server disconnect
// and after a refused connect whose code says "retry". What each holds is reported.
const members = [];
const chat = { timer: null, next: 0, sent: 0, acked: [], failed: {} };

function member(url, token, transports, index) {
  const m = {
    index,
    rooms: new Map(), // room_id -> {base, last, seqs: [], ids: []}
    shuttingDown: false,
    downAt: null, // Date.now() of the disconnect being recovered from
    back: [], // [{down, back}] each recovery: disconnect -> every room joined again
    recovered: 0, // messages taken from join acks after a reconnect
    unrecovered: 0, // rejoins whose history no longer reached back
    repeats: 0, // messages dropped as already held
    drops: {}, // disconnects not asked for, by reason
    refused: {}, // connect refusals, by code
    joins: 0,
  };
  m.socket = io(url, {
    auth: { token },
    transports,
    withCredentials: true, // the load balancer's stickiness cookie, kept per connection
    forceNew: true,
  });
  const socket = m.socket;
  const take = (message) => {
    const room = m.rooms.get(message.room_id);
    if (!room || room.last === null) return;
    if (message.seq <= room.last) return void m.repeats++;
    room.last = message.seq;
    room.seqs.push(message.seq);
    room.ids.push(message.id);
  };
  const joined = () => {
    if (m.downAt !== null && [...m.rooms.values()].every((r) => r.joined)) {
      m.back.push({ down: m.downAt, back: Date.now() });
      m.downAt = null;
    }
  };
  m.join = (room_id) =>
    new Promise((resolve) => {
      if (!m.rooms.has(room_id))
        m.rooms.set(room_id, { base: null, last: null, seqs: [], ids: [], joined: false });
      const room = m.rooms.get(room_id);
      const again = room.last !== null;
      const data = again ? { room_id, since: room.last } : { room_id };
      socket.timeout(10000).emit("join_room", data, (err, ack) => {
        if (err || !ack.ok) {
          setTimeout(() => socket.connected && m.join(room_id), 1000);
          return resolve(false);
        }
        if (!again) {
          room.base = ack.seq;
          room.last = ack.seq;
        } else if (!ack.recovered) {
          m.unrecovered++;
        }
        for (const message of ack.missed) {
          const before = room.last;
          take(message);
          if (again && room.last !== before) m.recovered++;
        }
        room.last = Math.max(room.last, ack.seq);
        room.joined = true;
        m.joins++;
        joined();
        resolve(true);
      });
    });
  socket.on("connect", () => {
    m.shuttingDown = false;
    for (const room_id of m.rooms.keys()) m.join(room_id);
  });
  socket.on("message", take);
  socket.on("server_shutdown", () => (m.shuttingDown = true));
  socket.on("disconnect", (reason) => {
    for (const room of m.rooms.values()) room.joined = false;
    if (reason === "io client disconnect") return;
    bump(m.drops, reason);
    if (m.downAt === null) m.downAt = Date.now();
    if (reason === "io server disconnect" && m.shuttingDown) socket.connect();
  });
  const retry = ["SHUTTING_DOWN", "DEPENDENCY_UNAVAILABLE", "RATE_LIMITED"];
  socket.on("connect_error", (err) => {
    if (socket.active) return; // the client retries by itself
    const code = (err.data && err.data.code) || "none";
    bump(m.refused, code);
    if (retry.includes(code)) setTimeout(() => socket.connect(), 250 + Math.random() * 1000);
  });
  return m;
}

const statusOf = (m) => ({
  index: m.index,
  connected: m.socket.connected,
  joined: [...m.rooms.values()].every((r) => r.joined),
  last: Object.fromEntries([...m.rooms].map(([id, r]) => [id, r.last])),
});

const memberOps = {
  // One member per token (urls in turn), each with its transports: [["websocket"], ...].
  async members({ urls, tokens, transports, timeout = 60000 }) {
    const began = members.length;
    tokens.forEach((token, n) => members.push(member(urls[n % urls.length], token,
      transports[n % transports.length], began + n)));
    const deadline = performance.now() + timeout;
    while (members.slice(began).some((m) => !m.socket.connected) && performance.now() < deadline)
      await sleep(50);
    return { connected: members.filter((m) => m.socket.connected).length };
  },
  // Member n joins rooms[n] (a list of room ids); answers once every join was acked.
  async join({ rooms }) {
    const outcomes = await Promise.all(
      members.flatMap((m, n) => (rooms[n] || []).map((room_id) => m.join(room_id))),
    );
    return { joined: outcomes.filter(Boolean).length, asked: outcomes.length };
  },
  // `rate` messages a second in all, from the members in turn (those connected and in their
  // rooms), each to the next of its rooms; rate 0 stops. Acks kept as [room_id, seq, id].
  async chat({ rate, timeout = 10000 }) {
    clearInterval(chat.timer);
    chat.timer = null;
    if (rate > 0) {
      chat.timer = setInterval(() => {
        for (let tries = 0; tries < members.length; tries++) {
          const m = members[chat.next++ % members.length];
          const rooms = [...m.rooms.entries()].filter(([, r]) => r.joined);
          if (!m.socket.connected || rooms.length === 0 || rooms.length < m.rooms.size) continue;
          const [room_id] = rooms[chat.sent % rooms.length];
          chat.sent++;
          m.socket.timeout(timeout).emit("send_message",
            { room_id, body: `js:${m.index}:${chat.sent}` }, (err, ack) => {
              if (err) bump(chat.failed, "timeout");
              else if (!ack.ok) bump(chat.failed, ack.error.code);
              else chat.acked.push([room_id, ack.message.seq, ack.message.id]);
            });
          return;
        }
      }, 1000 / rate);
    }
    return { sent: chat.sent, acked: chat.acked.length, failed: chat.failed };
  },
  // Every member's state in short: connected, in all its rooms, the last seq of each.
  async status() {
    return { members: members.map(statusOf) };
  },
  // Every member's state: connected, in all its rooms, what it holds, its recoveries.
  async report() {
    return {
      members: members.map((m) => ({
        ...statusOf(m),
        rooms: Object.fromEntries([...m.rooms].map(([id, r]) =>
          [id, { base: r.base, last: r.last, seqs: r.seqs, ids: r.ids }])),
        back: m.back,
        down: m.downAt,
        recovered: m.recovered,
        unrecovered: m.unrecovered,
        repeats: m.repeats,
        drops: m.drops,
        refused: m.refused,
      })),
      sent: chat.sent,
      acked: chat.acked,
      failed: chat.failed,
    };
  },
  // One member's emit and its ack (or {timeout}).
  async member_emit({ index, event, data, timeout = 10000 }) {
    try {
      return { ack: await members[index].socket.timeout(timeout).emitWithAck(event, data) };
    } catch (err) {
      return { timeout: String(err.message) };
    }
  },
};

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const { id, op, ...args } = JSON.parse(line);
  try {
    send({ reply: id, ...(await (ops[op] || memberOps[op])(args)) });
  } catch (err) {
    send({ reply: id, failure: String(err && err.stack ? err.stack : err) });
  }
});
lines.on("close", async () => {
  clearInterval(chat.timer);
  for (const entry of [...sockets, ...members]) entry.socket.disconnect();
  await sleep(100);
  process.exit(0);
});
