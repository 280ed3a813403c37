// Findings while the prescriber types: the form is posted to the server's check (the same
// check the confirm runs) and the server-rendered review replaces the review region's
// content. Without this script the "Check" button shows the same review.
(function () {
  "use strict";
  var form = document.getElementById("rx-form");
  var region = document.getElementById("review");
  var confirm = document.getElementById("confirm");
  if (!form || !region || !window.fetch || !window.URLSearchParams) { return; }
  var url = form.getAttribute("data-check");
  var timer = null;
  var sent = 0;
  var shown = 0;

  function body() {
    var data = new URLSearchParams();
    var fields = form.elements;
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (!f.name || f.disabled || f.type === "submit" || f.name === "reviewed") { continue; }
      if (f.type === "checkbox" && !f.checked) { continue; }
      data.append(f.name, f.value);
    }
    return data;
  }

  function show(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.querySelector(".review-body");
    var old = region.querySelector(".review-body");
    if (!fresh || !old) { return; }
    old.replaceWith(document.importNode(fresh, true));
    var verdict = fresh.getAttribute("data-verdict");
    if (confirm) { confirm.hidden = !(verdict === "soft" || verdict === "clear"); }
    region.setAttribute("data-checked", String(shown));
  }

  function failed(text) {
    var old = region.querySelector(".review-body");
    if (!old) { return; }
    var div = document.createElement("div");
    div.className = "review-body";
    div.setAttribute("data-verdict", "unavailable");
    var p = document.createElement("p");
    p.className = "alert";
    p.textContent = text;
    div.appendChild(p);
    old.replaceWith(div);
    if (confirm) { confirm.hidden = true; }
  }

  function check() {
    var n = ++sent;
    fetch(url, {
      method: "POST",
      body: body(),
      credentials: "same-origin",
      redirect: "manual",
      headers: { "Content-Type": "application/x-www-form-urlencoded" }
    }).then(function (r) {
      if (r.type === "opaqueredirect" || r.status === 401) {
        throw new Error("Your session has ended: reload the page and sign in again.");
      }
      if (!r.ok) { throw new Error("The check could not run (" + r.status + "): press the Check button."); }
      return r.text();
    }).then(function (html) {
      if (n < shown) { return; }
      shown = n;
      show(html);
    }).catch(function (e) {
      if (n >= shown) { shown = n; failed(e.message); }
    });
  }

  function later() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(check, 350);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
