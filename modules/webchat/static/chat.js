// The webchat page: HTTP login, then a Socket.IO connection with the access token (the
// official socket.io-client bundle, loaded before this file, defines `io`). See
// docs/websockets.md for the events and the reconnect-with-refresh recipe used here.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let tokens = null; // {access_token, refresh_token, user}
  let socket = null;
  let room = null; // {id, name}
  const members = new Map(); // user_id -> username

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

  // An event with its ack; an error ack becomes a thrown Error with the code.
  async function call(event, data) {
    const ack = await socket.timeout(5000).emitWithAck(event, data);
    if (!ack.ok) throw Object.assign(new Error(ack.error.message), { code: ack.error.code });
    return ack;
  }

  function renderMembers() {
    $("members").textContent = [...members.values()].sort().join(", ");
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

  // TOKEN_EXPIRED: refresh and reconnect. Anything else: log in again.
  async function onAuthError({ code }) {
    if (code !== "TOKEN_EXPIRED" || !tokens) return signedOut(code);
    try {
      tokens = await api("/public/refresh", { refresh_token: tokens.refresh_token });
      socket.connect();
    } catch (err) {
      signedOut(err.code);
    }
  }

  function enter(joined, present) {
    room = joined;
    members.clear();
    for (const member of present) members.set(member.user_id, member.username);
    $("room-title").textContent = room.name;
    $("room").hidden = false;
    renderMembers();
  }

  function connect() {
    socket = io({ auth: (send) => send({ token: tokens ? tokens.access_token : "" }) });
    socket.on("connect", async () => {
      setStatus("connected", `Connected (${socket.io.engine.transport.name})`);
      if (room) {
        const ack = await call("join_room", { room_id: room.id }); // a new socket joins again
        enter(ack.room, ack.members);
      }
    });
    socket.on("connect_error", (err) => onAuthError(err.data || { code: "CONNECT_FAILED" }));
    socket.on("session_ended", onAuthError);
    socket.on("disconnect", (reason) => {
      if (tokens) setStatus("disconnected", `Disconnected: ${reason}`);
    });
    socket.on("message", (message) => {
      if (room && message.room_id === room.id) addLine(message.from.username, message.body);
    });
    socket.on("user_joined", ({ room_id, user }) => {
      if (!room || room_id !== room.id) return;
      members.set(user.user_id, user.username);
      renderMembers();
      addLine(null, `${user.username} joined`);
    });
    socket.on("user_left", ({ room_id, user }) => {
      if (!room || room_id !== room.id) return;
      members.delete(user.user_id);
      renderMembers();
      addLine(null, `${user.username} left`);
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
        const ack = await call("join_room", { room_id: found.id });
        enter(ack.room, ack.members);
      } else {
        const ack = await call("create_room", { name });
        enter(ack.room, [{ user_id: tokens.user.id, username: tokens.user.username }]);
      }
      $("messages").replaceChildren();
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
  // says why (session_ended TOKEN_REVOKED), which signs the page out.
  $("logout").addEventListener("click", async () => {
    try {
      await api("/userauth/logout", { refresh_token: tokens.refresh_token }, tokens.access_token);
      setStatus("connected", "Logging out...");
    } catch (err) {
      showError("chat-error", err);
    }
  });
})();
