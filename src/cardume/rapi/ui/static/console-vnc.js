// The VNC console page: noVNC's RFB client over the console's WebSocket.
import RFB from "./vendor/novnc/core/rfb.js";

const box = document.getElementById("console");
const state = document.getElementById("console-state");
const url = new URL(box.dataset.ws, window.location.href);
url.protocol = url.protocol === "http:" ? "ws:" : "wss:";

const rfb = new RFB(box, url.href, { wsProtocols: ["binary"] });
rfb.scaleViewport = true;
rfb.addEventListener("connect", () => {
  state.textContent = "connected";
  box.dataset.state = "open";
  rfb.focus();
});
rfb.addEventListener("disconnect", (event) => {
  state.textContent = event.detail.clean ? "closed" : "closed: the connection was lost";
  box.dataset.state = "closed";
});
rfb.addEventListener("credentialsrequired", () => {
  const password = window.prompt("VNC password");
  if (password !== null) rfb.sendCredentials({ password });
});
rfb.addEventListener("desktopname", (event) => {
  box.dataset.desktop = event.detail.name;
});
