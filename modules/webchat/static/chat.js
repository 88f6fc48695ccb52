// The webchat page: HTTP login, then a Socket.IO connection with the access token (the
// official socket.io-client bundle, loaded before this file, defines `io`). It follows the
// reconnect recipe of docs/websockets.md ("Reconnecting (JS)"): it remembers the last `seq`
// shown, joins again with `since` after a reconnect and shows what it missed once and in
// order, refreshes its token in band on `session_expiring`, reconnects after a deploy's
// `server_shutdown` and says why on `session_ended`.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let tokens = null; // {access_token, refresh_token, user}
  let socket = null;
  let room = null; // {id, name, last: the last seq shown}
  let shuttingDown = false; // server_shutdown came: the server closes this socket soon
  let refreshing = null; // the refresh in flight: refresh tokens work once
  const members = new Map(); // user_id -> username (a large room's list holds only some)
  let memberCount = 0; // users in the room: a large room sends room_presence, not each user

  function setStatus(state, text) {
    $("status").dataset.state = state;
    $("status").textContent = text;
  }

  function showError(where, err) {
    $(where).textContent = err ? `${err.code || "ERROR"}: ${err.message}` : "";
  }

  // POST JSON; the parsed answer, or an Error carrying the problem's code.
  async function api(path, body, token) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
    const data = response.status === 204 ? null : await response.json();
    if (!response.ok) throw Object.assign(new Error(data.detail), { code: data.code });
    return data;
  }

  // An event with its ack; an error ack becomes a thrown Error with the code. `take(ack)`
  // runs in the ack's callback, as its packet arrives: after an `await`, a live message that
  // came in the same long-polling batch would be shown first.
  function call(event, data, take = (ack) => ack) {
    return new Promise((resolve, reject) => {
      socket.timeout(5000).emit(event, data, (err, ack) => {
        if (err) return reject(Object.assign(new Error("No answer."), { code: "TIMEOUT" }));
        if (!ack.ok) {
          return reject(Object.assign(new Error(ack.error.message), { code: ack.error.code }));
        }
        try {
          resolve(take(ack));
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  // A new token pair; one refresh at a time (a refresh token used twice ends the login).
  function refresh() {
    refreshing ??= api("/public/refresh", { refresh_token: tokens.refresh_token })
      .then((pair) => (tokens = pair))
      .finally(() => (refreshing = null));
    return refreshing;
  }

  function renderMembers() {
    const others = memberCount - members.size;
    const names = [...members.values()].sort().join(", ");
    $("members").textContent = others > 0 ? `${names} and ${others} more` : names;
  }

  function setMembers(present, count = present.length) {
    members.clear();
    for (const member of present) members.set(member.user_id, member.username);
    memberCount = count;
    renderMembers();
  }

  function addLine(from, text) {
    const item = document.createElement("li");
    if (from === null) {
      item.className = "notice";
    } else {
      const who = document.createElement("span");
      who.className = "from";
      who.textContent = `${from}:`;
      item.append(who, " ");
    }
    item.append(text); // text, never HTML
    $("messages").append(item);
  }

  function signedOut(code) {
    tokens = null;
    room = null;
    $("chat").hidden = true;
    $("room").hidden = true;
    $("login").hidden = false;
    setStatus("disconnected", `Signed out: ${code}`);
  }

  // A refused connect or an ended session: its code says what next. TOKEN_EXPIRED: refresh
  // and reconnect; the instance or a store is busy: try again after a short random pause;
  // anything else (TOKEN_REVOKED, BANNED, ...): log in again.
  async function onRefused({ code }) {
    if (!tokens) return;
    if (code === "TOKEN_EXPIRED") {
      try {
        await refresh();
        socket.connect();
      } catch (err) {
        signedOut(err.code);
      }
    } else if (["SHUTTING_DOWN", "DEPENDENCY_UNAVAILABLE", "RATE_LIMITED"].includes(code)) {
      setStatus("connecting", `Reconnecting (${code})...`);
      setTimeout(() => tokens && socket.connect(), 250 + Math.random() * 1000);
    } else {
      signedOut(code);
    }
  }

  // A room entered by name: its messages start after the ack's seq.
  function enter(ack, present) {
    room = { id: ack.room.id, name: ack.room.name, last: ack.seq };
    $("messages").replaceChildren();
    $("room-title").textContent = room.name;
    $("room").hidden = false;
    setMembers(present, ack.member_count);
  }

  // A message is shown unless its seq already was: each one once, in order.
  function take(message) {
    if (!room || message.room_id !== room.id || message.seq <= room.last) return;
    room.last = message.seq;
    addLine(message.from.username, message.body);
  }

  // The ack of joining again with `since`: what was missed, then live messages continue.
  function rejoined(ack) {
    if (!room || ack.room.id !== room.id) return;
    if (!ack.recovered) {
      // The history no longer reaches back: show a gap, then what it still holds.
      addLine(null, "Some messages are no longer in the history.");
      room.last = ack.missed.length ? ack.missed[0].seq - 1 : ack.seq;
    }
    ack.missed.forEach(take);
    room.last = Math.max(room.last, ack.seq);
    setMembers(ack.members, ack.member_count);
  }

  // A new socket is in no room: join the page's room again with the last seq shown.
  function rejoin() {
    if (!room) return;
    call("join_room", { room_id: room.id, since: room.last }, rejoined).catch((err) => {
      if (err.code === "NOT_FOUND" || err.code === "FORBIDDEN") {
        room = null;
        $("room").hidden = true;
        showError("chat-error", err);
      } else if (socket.connected) {
        setTimeout(() => socket.connected && rejoin(), 1000);
      }
    });
  }

  function connect() {
    // `auth` as a function is called before every (re)connection: always the current token.
    socket = io({ auth: (send) => send({ token: tokens ? tokens.access_token : "" }) });
    socket.on("connect", () => {
      shuttingDown = false;
      setStatus("connected", `Connected (${socket.io.engine.transport.name})`);
      rejoin();
    });
    socket.on("connect_error", (err) => {
      // The client retries a failed transport by itself; a refusal is ours to handle.
      if (!socket.active) onRefused(err.data || { code: "CONNECT_FAILED" });
    });
    socket.on("session_ended", onRefused);
    // Before the token expires, a new one in band: the socket stays.
    socket.on("session_expiring", async () => {
      if (!tokens) return;
      try {
        await refresh();
      } catch (err) {
        return signedOut(err.code);
      }
      // Refused: connect again with the new token.
      call("refresh_session", { token: tokens.access_token }).catch(() => {
        socket.disconnect().connect();
      });
    });
    // A deploy: the server closes this socket at `reconnect_after_ms`; connect again then.
    socket.on("server_shutdown", () => (shuttingDown = true));
    socket.on("disconnect", (reason) => {
      if (!tokens) return;
      setStatus("disconnected", `Disconnected: ${reason}`);
      if (reason === "io server disconnect" && shuttingDown) socket.connect();
    });
    socket.on("message", take);
    socket.on("user_joined", ({ room_id, user }) => {
      if (!room || room_id !== room.id) return;
      if (!members.has(user.user_id)) memberCount++;
      members.set(user.user_id, user.username);
      renderMembers();
      addLine(null, `${user.username} joined`);
    });
    socket.on("user_left", ({ room_id, user }) => {
      if (!room || room_id !== room.id) return;
      members.delete(user.user_id);
      memberCount = Math.max(members.size, memberCount - 1);
      renderMembers();
      addLine(null, `${user.username} left`);
    });
    // A room of more than SOCKETIO_PRESENCE_EVENTS_MAX users: how many, now and then; with
    // everyone in it when it is back at the limit (joins and leaves are told again).
    socket.on("room_presence", ({ room_id, member_count, members: present }) => {
      if (!room || room_id !== room.id) return;
      if (present) return setMembers(present, member_count);
      memberCount = Math.max(members.size, member_count);
      renderMembers();
    });
    socket.on("room_closed", ({ room_id }) => {
      if (room && room_id === room.id) {
        room = null;
        $("room").hidden = true;
      }
    });
  }

  async function logIn(register) {
    showError("login-error", null);
    const email = $("email").value;
    const password = $("password").value;
    try {
      if (register) await api("/public/register", { email, password, username: $("username").value });
      tokens = await api("/public/login", { email, password });
    } catch (err) {
      return showError("login-error", err);
    }
    $("me").textContent = tokens.user.username;
    $("login").hidden = true;
    $("chat").hidden = false;
    $("messages").replaceChildren();
    setStatus("connecting", "Connecting...");
    if (socket) socket.connect();
    else connect();
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    logIn(false);
  });
  $("register-button").addEventListener("click", () => logIn(true));

  $("join").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("chat-error", null);
    const name = $("room-name").value.trim();
    try {
      const { rooms } = await call("list_rooms", {});
      const found = rooms.find((candidate) => candidate.name === name);
      if (found) {
        await call("join_room", { room_id: found.id }, (ack) => enter(ack, ack.members));
      } else {
        const me = { user_id: tokens.user.id, username: tokens.user.username };
        await call("create_room", { name }, (ack) => enter(ack, [me]));
      }
    } catch (err) {
      showError("chat-error", err);
    }
  });

  $("send").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("chat-error", null);
    try {
      await call("send_message", { room_id: room.id, body: $("body").value });
      $("body").value = "";
    } catch (err) {
      showError("chat-error", err);
    }
  });

  // Logging out revokes the login on the server; the server then drops this socket and
  // says why (session_ended TOKEN_REVOKED), which signs the page out. That may arrive before
  // the logout's own answer, so the status is set before the request, never after it.
  $("logout").addEventListener("click", async () => {
    const before = [$("status").dataset.state, $("status").textContent];
    setStatus("connected", "Logging out...");
    try {
      await api("/userauth/logout", { refresh_token: tokens.refresh_token }, tokens.access_token);
    } catch (err) {
      if (tokens) setStatus(...before);
      showError("chat-error", err);
    }
  });
})();
