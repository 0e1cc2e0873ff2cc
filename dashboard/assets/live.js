// trustgate dashboard: the activity's live tail (Server-Sent Events). Without JavaScript the
// activity page shows the entries as of its loading; reload it for newer ones.
(function () {
  var table = document.querySelector("table[data-live]");
  var status = document.getElementById("live-status");
  if (!table || !status || !window.EventSource) { return; }
  var tbody = table.tBodies[0];
  var button = document.createElement("button");
  button.type = "button";
  button.id = "live-toggle";
  button.setAttribute("aria-pressed", "false");
  button.textContent = "Live tail";
  status.parentNode.insertBefore(button, status);
  var source = null, count = 0;
  function say(text) { status.textContent = text; }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) {
      var span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      td.appendChild(span);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
  }
  function stop(text) {
    if (source) { source.close(); source = null; }
    button.setAttribute("aria-pressed", "false");
    say(text);
  }
  button.addEventListener("click", function () {
    if (source) { stop("Live tail off."); return; }
    source = new EventSource(table.getAttribute("data-live"));
    button.setAttribute("aria-pressed", "true");
    say("Live tail on: new entries appear at the top.");
    source.addEventListener("entry", function (ev) {
      var e = JSON.parse(ev.data);
      var empty = tbody.querySelector("td[colspan]");
      if (empty) { tbody.removeChild(empty.parentNode); }
      var tr = document.createElement("tr");
      cell(tr, String(e.seq)); cell(tr, e.time); cell(tr, e.decision, "decision decision-" + e.decision);
      cell(tr, e.who); cell(tr, e.what); cell(tr, e.detail);
      tbody.insertBefore(tr, tbody.firstChild);
      count++;
      say("Live tail on: " + count + " new " + (count === 1 ? "entry" : "entries") + ".");
    });
    source.addEventListener("end", function (ev) { stop("Live tail ended: " + ev.data); });
  });
})();
