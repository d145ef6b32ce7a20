// The serial console page: xterm.js fed by the console's WebSocket (bytes both ways).
import { Terminal } from "./vendor/xterm/lib/xterm.mjs";

const box = document.getElementById("console");
const state = document.getElementById("console-state");
const term = new Terminal({ cursorBlink: true, scrollback: 5000, rows: 30, cols: 100 });
term.open(box);

const url = new URL(box.dataset.ws, window.location.href);
url.protocol = url.protocol === "http:" ? "ws:" : "wss:";
const ws = new WebSocket(url.href, ["binary"]);
ws.binaryType = "arraybuffer";
const encoder = new TextEncoder();

ws.addEventListener("open", () => {
  state.textContent = "connected (what you type goes to the instance)";
  box.dataset.state = "open";
  term.focus();
});
ws.addEventListener("message", (event) => {
  term.write(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
});
ws.addEventListener("close", (event) => {
  state.textContent = "closed" + (event.reason ? ": " + event.reason : "");
  box.dataset.state = "closed";
  term.options.disableStdin = true;
});
term.onData((text) => {
  if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(text));
});
term.onBinary((text) => {
  if (ws.readyState === WebSocket.OPEN) {
    ws.send(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff));
  }
});
