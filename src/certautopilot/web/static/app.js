// All of the UI's script: the Content-Security-Policy allows no inline script or handler,
// so behaviour hangs on data- attributes here. Copy buttons, the CSRF header on every HTMX
// request, confirmations, and "Go back" links.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var text = document.getElementById(button.dataset.copy).textContent.trim();
  var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    var area = document.createElement("textarea");
    area.value = text; document.body.appendChild(area); area.select();
    document.execCommand("copy"); area.remove(); done();
  }
});
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});
// Forms that ask first (removing a member, revoking a token).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
// "Go back" on error pages: the previous page, or the link's own target without history.
document.addEventListener("click", function (event) {
  var link = event.target.closest("a[data-back]");
  if (!link || window.history.length < 2) return;
  event.preventDefault();
  window.history.back();
});
// Live pages (#live[data-live-url]): ask the server for the page's live part every
// data-live-every seconds and replace only the [data-region] blocks whose HTML changed;
// timeline rows ([data-keyed] children with data-key) are added and dropped one by one.
// Focus, scroll position and what the user is typing stay, and a status change is said
// through #live-announce (aria-live). Polling stops once the server sends no interval.
(function () {
  var live = document.getElementById("live");
  if (!live || !live.dataset.liveUrl) return;
  var served = {};  // region name -> the HTML the server last sent (not the live DOM)
  live.querySelectorAll("[data-region]").forEach(function (el) { served[el.dataset.region] = el.innerHTML; });
  var timer = null;
  var failures = 0;

  function focusKey(el) {
    if (!el || el === document.body) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    // a timeline group's "N steps" toggle: the group is replaced by its longer self
    var group = el.tagName === "SUMMARY" && el.closest("[data-group]");
    if (group) return '[data-group="' + CSS.escape(group.dataset.group) + '"] summary';
    if (el.dataset && el.dataset.copy) return '[data-copy="' + CSS.escape(el.dataset.copy) + '"]';
    if (el.name) return el.tagName.toLowerCase() + '[name="' + CSS.escape(el.name) + '"]';
    return null;
  }

  function updateKeyed(old, fresh) {
    var have = {};
    Array.prototype.forEach.call(old.children, function (c) { have[c.dataset.key] = c; });
    var keep = {};
    var before = old.firstElementChild;
    var opened = {};  // a group replaced by its longer self keeps its steps unfolded
    Array.prototype.forEach.call(old.children, function (c) {
      if (c.dataset.group && c.querySelector("details[open]")) opened[c.dataset.group] = true;
    });
    Array.prototype.forEach.call(fresh.children, function (c) {
      keep[c.dataset.key] = true;
      var mine = have[c.dataset.key];
      if (mine) { before = mine.nextElementSibling; return; }
      var added = old.insertBefore(document.importNode(c, true), before);
      var steps = added.querySelector("details");
      if (steps && opened[added.dataset.group]) steps.open = true;
    });
    Object.keys(have).forEach(function (k) { if (!keep[k]) have[k].remove(); });
  }

  function apply(fresh) {
    var active = document.activeElement;
    var key = null;
    fresh.querySelectorAll("[data-region]").forEach(function (region) {
      var name = region.dataset.region;
      var html = region.innerHTML;
      if (served[name] === html) return;
      served[name] = html;
      var mine = live.querySelector('[data-region="' + name + '"]');
      if (!mine) return;
      if (mine.contains(active)) key = focusKey(active);
      if (mine.hasAttribute("data-keyed")) updateKeyed(mine, region);
      else mine.innerHTML = html;
      if (window.htmx) window.htmx.process(mine);
    });
    if (key && !document.body.contains(active)) {
      var again = live.querySelector(key);
      if (again) again.focus({ preventScroll: true });
    }
    var status = fresh.dataset.status;
    if (status !== live.dataset.status) {
      live.dataset.status = status;
      live.dataset.statusLabel = fresh.dataset.statusLabel;
      var say = document.getElementById("live-announce");
      if (say) say.textContent = "Status: " + fresh.dataset.statusLabel;
    }
    if (fresh.dataset.liveUrl) {
      live.dataset.liveUrl = fresh.dataset.liveUrl;
      live.dataset.liveEvery = fresh.dataset.liveEvery;
    } else {
      delete live.dataset.liveUrl;
      delete live.dataset.liveEvery;
    }
  }

  function stop(message) {
    delete live.dataset.liveUrl;
    var say = document.getElementById("live-announce");
    if (say && message) say.textContent = message;
  }

  function poll() {
    timer = null;
    if (!live.dataset.liveUrl) return;
    if (document.hidden) return;  // resumed by visibilitychange
    fetch(live.dataset.liveUrl, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401 || response.redirected) {
          stop("Signed out: live updates stopped. Reload the page after signing in.");
          return null;
        }
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (text) {
        if (text === null) return;
        failures = 0;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live");
        if (fresh) apply(fresh);
        schedule();
      })
      .catch(function () { failures += 1; schedule(); });
  }

  function schedule() {
    if (timer || !live.dataset.liveUrl) return;
    var every = parseFloat(live.dataset.liveEvery || "1") * 1000;
    timer = setTimeout(poll, Math.min(every * Math.pow(2, failures), 30000));
  }

  document.addEventListener("visibilitychange", function () { if (!document.hidden) schedule(); });
  schedule();
})();
// A table wider than a phone scrolls inside itself (app.css): make it reachable by
// keyboard (Tab, then the arrow keys), as only focusable regions can be scrolled without
// a mouse.
(function () {
  function mark() {
    document.querySelectorAll("main table, main .scroll-x").forEach(function (el) {
      if (el.scrollWidth > el.clientWidth + 1) el.tabIndex = 0;
      else if (el.tabIndex === 0) el.removeAttribute("tabindex");
    });
  }
  mark();
  window.addEventListener("resize", mark);
})();
// The import page: files dropped on the drop zone go into its file input (the form
// then posts them like chosen ones); the names chosen are listed under it.
(function () {
  document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
    var input = document.getElementById(zone.dataset.dropzone);
    var chosen = document.getElementById("import-chosen");
    if (!input) return;
    function show() {
      if (!chosen) return;
      var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
      chosen.textContent = names.length ? names.length + " file(s): " + names.join(", ") : "";
    }
    zone.addEventListener("dragover", function (e) { e.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", function () { zone.classList.remove("dragging"); });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      zone.classList.remove("dragging");
      if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; show(); }
    });
    input.addEventListener("change", show);
  });
})();
