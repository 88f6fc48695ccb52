// The official socket.io-client, remote-controlled by pytest (tests/support/js_client.py).
//
// One socket per process. Commands arrive on stdin as JSON lines {id, op, ...}; each gets
// one reply {reply: id, ...}. Every server event is reported as {event, data}, and the
// socket's own "disconnect" as {event: "disconnect", data: reason}, and Engine.IO's transport
// changes as engine_open / engine_upgrade.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

let socket = null;
let token = null;

const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");

// Wait for the outcome of a (re)connection: the socket id and transport, or the refusal as
// socket.io-client exposes it to application code (err.message, err.data).
function connected() {
  return new Promise((resolve) => {
    const done = (answer) => {
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
      resolve(answer);
    };
    const onConnect = () =>
      done({ ok: true, sid: socket.id, transport: socket.io.engine.transport.name });
    const onError = (err) =>
      done({ ok: false, message: err.message, data: err.data === undefined ? null : err.data });
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

const ops = {
  async connect({ url, token: first, transports, upgrade }) {
    token = first;
    socket = io(url, {
      // Called before every (re)connection: the current token, as the docs' recipe does.
      auth: (cb) => cb(token === null ? {} : { token }),
      transports,
      upgrade,
      reconnection: false,
      forceNew: true,
    });
    socket.onAny((event, data) => send({ event, data: data === undefined ? null : data }));
    // Engine.IO's transport: the one it opened with, then each upgrade (polling -> websocket).
    socket.io.on("open", () => {
      const engine = socket.io.engine;
      send({ event: "engine_open", data: engine.transport.name });
      engine.on("upgrade", (transport) => send({ event: "engine_upgrade", data: transport.name }));
    });
    socket.on("disconnect", (reason) => send({ event: "disconnect", data: reason }));
    return connected();
  },
  async emit({ event, data, timeout }) {
    try {
      return { ack: await socket.timeout(timeout).emitWithAck(event, data) };
    } catch (err) {
      return { timeout: String(err.message) };
    }
  },
  async transport() {
    return { transport: socket.io.engine.transport.name };
  },
  async set_token({ token: next }) {
    token = next;
    return {};
  },
  async reconnect() {
    const outcome = connected();
    socket.connect();
    return outcome;
  },
  async state() {
    return { connected: socket.connected, active: socket.active };
  },
  async close() {
    socket?.disconnect();
    return {};
  },
};

const input = createInterface({ input: process.stdin });
input.on("line", async (line) => {
  const { id, op, ...args } = JSON.parse(line);
  try {
    send({ reply: id, ...(await ops[op](args)) });
  } catch (err) {
    send({ reply: id, failure: String(err && err.stack ? err.stack : err) });
  }
});
input.on("close", () => {
  socket?.disconnect();
  process.exit(0);
});
