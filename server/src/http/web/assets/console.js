// Outpost console: live countdowns, local times, the caller pop-up.
// Pages work without it; it only makes them live.
(function () {
  "use strict";

  function words(secs) {
    var a = Math.abs(secs), t;
    if (a >= 86400) t = Math.floor(a / 86400) + "d " + pad(Math.floor((a % 86400) / 3600)) + "h";
    else if (a >= 3600) t = Math.floor(a / 3600) + "h " + pad(Math.floor((a % 3600) / 60)) + "m";
    else t = Math.floor(a / 60) + "m " + pad(a % 60) + "s";
    return secs < 0 ? t + " overdue" : "in " + t;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var left = Math.round((due - now) / 1000);
      el.textContent = words(left);
      el.classList.toggle("overdue", left < 0);
    });
    // Queue rows: the 30- and 45-minute prompts of SPEC.md 4.
    document.querySelectorAll("tr[data-remind-at]").forEach(function (tr) {
      var remind = Date.parse(tr.getAttribute("data-remind-at"));
      var reassign = Date.parse(tr.getAttribute("data-reassign-at") || "");
      var r = !isNaN(reassign) && now >= reassign;
      tr.classList.toggle("prompt-reassign", r);
      tr.classList.toggle("prompt-remind", !r && !isNaN(remind) && now >= remind);
      var cell = tr.querySelector(".prompt");
      if (cell) cell.textContent = r ? "Reassign now" : (!isNaN(remind) && now >= remind ? "Remind the engineer" : "");
    });
  }

  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.title = el.textContent;
      el.textContent = d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    });
  }

  // The caller pop-up: staff pages ask for calls reported by the phone
  // system since the last one seen.
  // The last call seen is kept for the browser tab, so that a call pops up
  // once, not again on every page.
  var lastCall = null;
  try { lastCall = sessionStorage.getItem("outpost.lastCall"); } catch (e) {}
  function showCall(call) {
    var box = document.getElementById("caller-popup");
    if (!box) return;
    box.textContent = "";
    var h = document.createElement("h2");
    h.id = "caller-title";
    h.textContent = "Incoming call: " + call.caller;
    box.appendChild(h);
    var p = document.createElement("p");
    if (call.matches.length === 0) p.textContent = "No customer has this number.";
    else if (call.matches.length === 1) p.textContent = "This is " + call.matches[0].name + " (customer " + call.matches[0].code + ").";
    else p.textContent = call.matches.length + " customers have this number:";
    box.appendChild(p);
    var ul = document.createElement("ul");
    call.matches.forEach(function (m) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = "/console/organizations/" + m.id + "?call=" + call.id;
      a.textContent = "Open the dossier of " + m.name;
      li.appendChild(a);
      ul.appendChild(li);
    });
    if (call.matches.length === 0) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = "/console?q=" + encodeURIComponent(call.caller);
      a.textContent = "Search for the caller";
      li.appendChild(a);
      ul.appendChild(li);
    }
    box.appendChild(ul);
    var b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.textContent = "Dismiss";
    b.addEventListener("click", function () { box.hidden = true; });
    box.appendChild(b);
    box.hidden = false;
    var first = box.querySelector("a");
    if (first) first.focus();
  }
  function pollCalls() {
    var url = "/console/calls" + (lastCall === null ? "" : "?after=" + encodeURIComponent(lastCall));
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        if (data.calls.length) showCall(data.calls[data.calls.length - 1]);
        lastCall = String(data.last_id);
        try { sessionStorage.setItem("outpost.lastCall", lastCall); } catch (e) {}
      })
      .catch(function () {});
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    tick();
    setInterval(tick, 1000);
    if (document.getElementById("caller-popup")) {
      pollCalls();
      setInterval(pollCalls, 3000);
    }
    // Live lists (the queues) reload now and then, but never under someone
    // who is choosing an engineer or reading the caller pop-up.
    var main = document.getElementById("main");
    var every = main && parseInt(main.getAttribute("data-refresh") || "", 10);
    if (every > 0) {
      setInterval(function () {
        var busy = /INPUT|TEXTAREA|SELECT|BUTTON/.test(document.activeElement.tagName);
        var popup = document.getElementById("caller-popup");
        if (!busy && !(popup && !popup.hidden)) location.reload();
      }, every * 1000);
    }
    // Keyboard: "/" focuses the search box where there is one.
    document.addEventListener("keydown", function (e) {
      if (e.key !== "/" || /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
      var q = document.getElementById("q");
      if (q) { e.preventDefault(); q.focus(); }
    });
  });
})();
