// handoff inbox: shows new messages as they arrive (server-sent events), as text only.
// The page works without this script; it only saves a reload.
"use strict";
(function () {
  var list = document.getElementById("live");
  var box = document.getElementById("live-box");
  if (!list || !box || !window.EventSource) return;
  var after = list.getAttribute("data-after") || "";
  // an empty `after` means the page showed no message yet: the stream starts from the first
  var es = new EventSource("/inbox/events?after=" + encodeURIComponent(after));
  function text(tag, cls, value) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }
  es.addEventListener("message", function (e) {
    var m;
    try { m = JSON.parse(e.data); } catch (err) { return; }
    var li = document.createElement("li");
    li.className = "live-msg" + (m.urgent ? " urgent" : "");
    li.setAttribute("data-id", String(m.id));
    var head = document.createElement("div");
    head.className = "meta";
    head.appendChild(text("span", "from", m.from));
    head.appendChild(document.createTextNode(" → "));
    head.appendChild(text("span", "to", m.to));
    head.appendChild(text("time", "", m.ts));
    if (m.urgent) head.appendChild(text("span", "badge urgent-badge", "urgent"));
    li.appendChild(head);
    li.appendChild(text("pre", "body", m.body));
    var a = text("a", "open", "open thread");
    a.href = "/inbox/t/" + encodeURIComponent(m.id);
    li.appendChild(a);
    list.insertBefore(li, list.firstChild);
    box.hidden = false;
  });
})();
