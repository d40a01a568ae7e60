// The cloudphone console: every page is a shell that this script fills from
// the JSON API. The access token lives in this page's memory only; it is
// renewed through the cookie session (an HttpOnly refresh cookie scoped to the
// auth routes, and a CSRF token the page echoes in a header).
"use strict";

(function () {
  var accessToken = "";
  var refreshing = null;
  var me = null;

  // ---- DOM helpers ----
  function $(sel) { return document.querySelector(sel); }
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === "text") e.textContent = v;
        else if (k === "onclick") e.addEventListener("click", v);
        else e.setAttribute(k, v === true ? "" : v);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function flash(msg, kind) {
    var f = $("#flash");
    f.textContent = msg;
    f.className = "flash " + (kind || "error");
    f.hidden = !msg;
  }
  function showError(err) {
    flash(err && err.message ? err.message : String(err), "error");
  }
  function money(minor, currency) {
    return (minor / 100).toFixed(2) + " " + (currency || "");
  }
  function when(s) {
    if (!s) return "";
    var d = new Date(s);
    return d.toLocaleString();
  }
  // cellLabel names a table cell where the narrow layout hides the header.
  function cellLabel(text) { return el("span", { class: "cell-label", text: text + " " }); }
  function mb(n) { return n >= 1024 ? (n / 1024) + " GB" : n + " MB"; }
  function confirmAction(text) {
    var d = $("#confirm");
    $("#confirm-text").textContent = text;
    return new Promise(function (resolve) {
      d.addEventListener("close", function once() {
        d.removeEventListener("close", once);
        resolve(d.returnValue === "ok");
      });
      d.returnValue = "";
      d.showModal();
    });
  }

  function has(feature) {
    return (" " + (document.body.getAttribute("data-features") || "") + " ").indexOf(" " + feature + " ") >= 0;
  }

  // ---- API ----
  function cookie(name) {
    var parts = document.cookie.split(";");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].trim().split("=");
      if (kv[0] === name) return decodeURIComponent(kv.slice(1).join("="));
    }
    return "";
  }
  function apiError(resp, body) {
    var e = new Error("");
    e.status = resp.status;
    if (body && body.error) {
      e.code = body.error.code;
      e.message = body.error.message || body.error.code;
      if (body.error.details && body.error.details.length) {
        e.message += ": " + body.error.details.map(function (d) {
          return (d.field ? d.field + " " : "") + (d.message || d.problem || "");
        }).join("; ");
      }
    } else {
      e.code = "http_" + resp.status;
      e.message = "The platform answered " + resp.status + " " + resp.statusText;
    }
    return e;
  }
  function readBody(resp) {
    var type = resp.headers.get("Content-Type") || "";
    if (type.indexOf("json") >= 0) return resp.json().catch(function () { return null; });
    return Promise.resolve(null);
  }
  // sessionCall posts to an auth route with the cookie session.
  function sessionCall(path, body) {
    var headers = { "Content-Type": "application/json", "X-Session": "cookie" };
    var csrf = cookie("cp_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
    if (accessToken) headers["Authorization"] = "Bearer " + accessToken;
    return fetch(path, { method: "POST", headers: headers, body: JSON.stringify(body || {}), credentials: "same-origin" })
      .then(function (resp) {
        return readBody(resp).then(function (b) {
          if (!resp.ok) throw apiError(resp, b);
          return b;
        });
      });
  }
  function refresh() {
    if (!refreshing) {
      refreshing = sessionCall("/api/v1/auth/refresh", {}).then(function (t) {
        accessToken = t.access_token;
        refreshing = null;
        return accessToken;
      }, function (e) {
        refreshing = null;
        accessToken = "";
        throw e;
      });
    }
    return refreshing;
  }
  // raw sends one request with the access token, renewing it once on 401.
  function raw(method, path, opts, retried) {
    opts = opts || {};
    var headers = Object.assign({}, opts.headers || {});
    if (accessToken) headers["Authorization"] = "Bearer " + accessToken;
    var init = { method: method, headers: headers, credentials: "same-origin", signal: opts.signal };
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.json);
    }
    return fetch(path, init).then(function (resp) {
      if (resp.status === 401 && !retried) {
        return refresh().then(function () { return raw(method, path, opts, true); }, function () {
          toLogin();
          throw new Error("Your session ended; log in again.");
        });
      }
      return resp;
    });
  }
  function api(method, path, json, headers) {
    return raw(method, path, { json: json, headers: headers }).then(function (resp) {
      return readBody(resp).then(function (b) {
        if (!resp.ok) throw apiError(resp, b);
        return b;
      });
    });
  }
  function toLogin() {
    var next = location.pathname + location.search;
    location.assign("/console/login?next=" + encodeURIComponent(next));
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }
  function every(ms, fn) {
    var stopped = false;
    function tick() {
      if (stopped) return;
      Promise.resolve().then(fn).catch(showError).then(function () {
        if (!stopped) setTimeout(tick, document.hidden ? ms * 4 : ms);
      });
    }
    tick();
    return function () { stopped = true; };
  }

  // ---- public pages ----
  function nextPage() {
    var n = new URLSearchParams(location.search).get("next") || "";
    return n.indexOf("/console/") === 0 ? n : "/console/";
  }
  function formValues(form) {
    var out = {};
    new FormData(form).forEach(function (v, k) { out[k] = v; });
    return out;
  }
  function busy(form, on) {
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = on; });
  }
  function login(name, password) {
    return sessionCall("/api/v1/auth/login", { login: name, password: password }).then(function (t) {
      accessToken = t.access_token;
      location.assign(nextPage());
    });
  }
  var pages = {};
  pages.login = function () {
    var f = $("#login-form");
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = formValues(f);
      busy(f, true);
      flash("");
      login(v.login, v.password).catch(function (e) { busy(f, false); showError(e); });
    });
  };
  pages.signup = function () {
    var f = $("#signup-form");
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = formValues(f);
      busy(f, true);
      flash("");
      fetch("/api/v1/auth/register", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(v) })
        .then(function (resp) {
          return readBody(resp).then(function (b) { if (!resp.ok) throw apiError(resp, b); });
        })
        .then(function () { return login(v.username, v.password); })
        .catch(function (e) { busy(f, false); showError(e); });
    });
  };

  // ---- home ----
  pages.home = function () {
    api("GET", "/api/v1/balance").then(function (b) {
      $("#balance").textContent = money(b.balance, b.currency);
    }).catch(showError);
    Promise.all([api("GET", "/api/v1/subscriptions"), api("GET", "/api/v1/plans")]).then(function (r) {
      var subs = (r[0].subscriptions || []).filter(function (s) { return s.status === "active"; });
      var names = {};
      (r[1].plans || []).forEach(function (p) { names[p.id] = p.name; });
      var box = clear($("#subscription"));
      if (!subs.length) {
        box.appendChild(el("p", null, "No active plan. ", el("a", { href: "/console/plans", text: "Buy one" })));
        return;
      }
      subs.forEach(function (s) {
        box.appendChild(el("p", null, el("strong", { text: names[s.plan_id] || s.plan_id }), " until " + when(s.expires_at)));
      });
    }).catch(showError);
    api("GET", "/api/v1/quotas/me").then(function (q) {
      var t = clear($("#quota"));
      var rows = [
        ["Phones", q.usage.devices, q.limits.max_devices],
        ["Running", q.usage.running_devices, q.limits.max_running_devices],
        ["Cores", q.usage.cpu_cores, q.limits.max_cpu_cores],
        ["Memory", mb(q.usage.memory_mb), mb(q.limits.max_memory_mb)]
      ];
      rows.forEach(function (r) { t.appendChild(el("tr", null, el("th", { text: r[0] }), el("td", { text: r[1] + " of " + r[2] }))); });
    }).catch(showError);
    if (has("notifications")) {
      api("GET", "/api/v1/notifications?limit=5").then(function (p) {
        var ul = clear($("#recent"));
        (p.items || []).forEach(function (n) { ul.appendChild(notificationItem(n, false)); });
        if (!(p.items || []).length) ul.appendChild(el("li", { text: "Nothing yet." }));
      }).catch(showError);
    }
  };

  // ---- plans ----
  pages.plans = function () {
    function loadOrders() {
      return Promise.all([api("GET", "/api/v1/orders?limit=20"), api("GET", "/api/v1/plans")]).then(function (r) {
        var names = {};
        (r[1].plans || []).forEach(function (p) { names[p.id] = p.name; });
        var tb = clear($("#orders tbody"));
        (r[0].orders || []).forEach(function (o) {
          tb.appendChild(el("tr", null, el("td", { text: when(o.created_at) }), el("td", { text: names[o.plan_id] || o.plan_id }),
            el("td", null, el("span", { class: "state s-" + o.status, text: o.status })), el("td", { text: o.failure_reason || "" })));
        });
      });
    }
    api("GET", "/api/v1/plans").then(function (r) {
      var box = clear($("#plans"));
      (r.plans || []).forEach(function (p) {
        var q = p.quota;
        var buy = el("button", { type: "button", text: "Buy for " + money(p.price, p.currency), "data-plan": p.id });
        buy.addEventListener("click", function () { purchase(p, buy); });
        box.appendChild(el("section", { class: "card plan" }, el("h2", { text: p.name }),
          el("p", { text: p.period_days + " days" }),
          el("ul", { class: "list" },
            el("li", { text: q.max_devices + " phones, " + q.max_running_devices + " running" }),
            el("li", { text: q.max_cpu_cores + " cores, " + mb(q.max_memory_mb) + " memory" }),
            el("li", { text: "each phone up to " + q.device_max_cpu_cores + " cores, " + mb(q.device_max_memory_mb) })),
          buy));
      });
      if (!(r.plans || []).length) box.appendChild(el("p", { text: "No plans are on sale." }));
    }).catch(showError);
    loadOrders().catch(showError);

    function purchase(p, button) {
      flash("");
      button.disabled = true;
      var box = $("#order-box");
      box.hidden = false;
      $("#order-status").textContent = "Placing the order for " + p.name + "…";
      $("#order-progress").removeAttribute("value");
      clear($("#order-steps"));
      api("POST", "/api/v1/orders", { plan_id: p.id }, { "Idempotency-Key": uuid() }).then(function (o) {
        var stop = every(1000, function () {
          return api("GET", "/api/v1/orders/" + o.id).then(function (o) {
            var steps = clear($("#order-steps"));
            ((o.saga && o.saga.history) || []).forEach(function (h) {
              steps.appendChild(el("li", { text: h.step + ": " + h.outcome + (h.detail ? " (" + h.detail + ")" : "") }));
            });
            $("#order-status").textContent = "Order " + o.status + (o.failure_reason ? ": " + o.failure_reason : "");
            if (o.status === "active" || o.status === "failed" || o.status === "cancelled") {
              stop();
              button.disabled = false;
              $("#order-progress").value = 1;
              if (o.status === "active") flash("The plan " + p.name + " is active.", "ok");
              else flash("The order failed: " + (o.failure_reason || o.failure_code || o.status), "error");
              loadOrders().catch(showError);
            }
          });
        });
      }).catch(function (e) {
        button.disabled = false;
        box.hidden = true;
        showError(e);
      });
    }
  };

  // ---- phones ----
  var busyStates = { creating: 1, starting: 1, restarting: 1, stopping: 1, deleting: 1 };
  function stateBadge(s) { return el("span", { class: "state s-" + s + (busyStates[s] ? " busy" : ""), text: s }); }
  function phoneAction(id, name, act) {
    var verb = { start: "Start", stop: "Stop", restart: "Restart", delete: "Delete" }[act];
    return confirmAction(verb + " the phone " + name + "?" + (act === "delete" ? " Its data is lost." : "")).then(function (ok) {
      if (!ok) return false;
      flash("");
      var req = act === "delete" ? api("DELETE", "/api/v1/devices/" + id) : api("POST", "/api/v1/devices/" + id + "/" + act);
      return req.then(function () { return true; });
    });
  }
  pages.phones = function () {
    var form = $("#create-form");
    api("GET", "/api/v1/quotas/me").then(function (q) {
      var L = q.limits, U = q.usage;
      var sizes = [[1, 2048], [2, 4096], [4, 8192], [8, 16384]];
      var box = $("#sizes");
      var any = false;
      sizes.forEach(function (s, i) {
        var fits = s[0] <= L.device_max_cpu_cores && s[1] <= L.device_max_memory_mb;
        if (!fits) return;
        var free = s[0] <= L.max_cpu_cores - U.cpu_cores && s[1] <= L.max_memory_mb - U.memory_mb;
        var input = el("input", { type: "radio", name: "size", value: s[0] + ":" + s[1], checked: !any && free });
        if (!any && free) any = true;
        box.appendChild(el("label", { class: "size" + (free ? "" : " full") }, input, s[0] + " core" + (s[0] > 1 ? "s" : "") + ", " + mb(s[1]) + (free ? "" : " (over what is left)")));
      });
      var hint = $("#quota-hint");
      if (!L.max_devices) hint.textContent = "You have no plan yet: buy one on the Plans page to create phones.";
      else hint.textContent = "In use: " + U.devices + " of " + L.max_devices + " phones, " + U.cpu_cores + " of " + L.max_cpu_cores + " cores, " + mb(U.memory_mb) + " of " + mb(L.max_memory_mb) + ".";
    }).catch(showError);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = formValues(form);
      if (!v.size) { flash("Pick a size.", "error"); return; }
      var s = v.size.split(":");
      busy(form, true);
      flash("");
      api("POST", "/api/v1/devices", { name: v.name, cpu_cores: +s[0], memory_mb: +s[1] }).then(function (d) {
        flash("Creating " + d.name + "…", "ok");
        form.reset();
        return load();
      }).catch(showError).then(function () { busy(form, false); });
    });
    function load() {
      return api("GET", "/api/v1/devices").then(function (r) {
        var list = (r.devices || []).filter(function (d) { return d.state !== "deleted"; });
        var tb = clear($("#phones tbody"));
        $("#phones-empty").hidden = list.length > 0;
        list.forEach(function (d) {
          var acts = el("td", { class: "acts" });
          ["start", "stop", "restart", "delete"].forEach(function (a) {
            var b = el("button", { type: "button", class: a === "delete" ? "danger small" : "small", text: a, "data-act": a });
            b.addEventListener("click", function () {
              phoneAction(d.id, d.name, a).then(function (done) { if (done) load(); }).catch(showError);
            });
            acts.appendChild(b);
          });
          tb.appendChild(el("tr", { "data-id": d.id, "data-state": d.state },
            el("td", null, el("a", { href: "/console/phones/" + encodeURIComponent(d.id), text: d.name })),
            el("td", null, stateBadge(d.state), d.last_error ? el("div", { class: "error-text", text: d.last_error }) : null),
            el("td", { text: d.cpu_cores + " × " + mb(d.memory_mb) }), acts));
        });
      });
    }
    every(2000, load);
  };

  pages.phone = function () {
    var id = document.body.getAttribute("data-phone");
    var dev = null;
    var img = $("#screen");
    var lastURL = "";
    var shooting = false;
    function shell(cmd) {
      return api("POST", "/api/v1/devices/" + id + "/shell", { command: cmd, timeout_s: 30 });
    }
    function load() {
      return api("GET", "/api/v1/devices/" + id).then(function (d) {
        dev = d;
        $("#phone-name").textContent = d.name;
        document.title = d.name + " · cloudphone";
        var st = clear($("#phone-state"));
        st.appendChild(stateBadge(d.state));
        $("#phone-error").textContent = d.last_error || "";
        if (!has("adb")) return;
        $("#connect-cmd").textContent = "cpctl adb-connect " + d.name;
        if (d.state !== "running") {
          img.hidden = true;
          $("#screen-note").hidden = false;
        }
      });
    }
    function screenshot() {
      if (!dev || dev.state !== "running" || shooting) return;
      shooting = true;
      return raw("GET", "/api/v1/devices/" + id + "/screenshot").then(function (resp) {
        if (!resp.ok) return readBody(resp).then(function (b) { throw apiError(resp, b); });
        return resp.blob();
      }).then(function (blob) {
        var url = URL.createObjectURL(blob);
        img.src = url;
        img.hidden = false;
        $("#screen-note").hidden = true;
        if (lastURL) URL.revokeObjectURL(lastURL);
        lastURL = url;
      }).catch(function (e) {
        // A phone that stopped between two refreshes answers 409; the next
        // state poll hides the screen.
        if (e.status !== 409) throw e;
      }).then(function () { shooting = false; }, function (e) { shooting = false; throw e; });
    }
    var packagesShown = false;
    function packages() {
      if (!has("adb") || !dev || dev.state !== "running" || packagesShown) return;
      packagesShown = true;
      return shell("pm list packages").then(function (r) {
        var ul = clear($("#packages"));
        r.stdout.split("\n").map(function (l) { return l.trim().replace(/^package:/, ""); }).filter(Boolean).sort().forEach(function (p) {
          ul.appendChild(el("li", { text: p }));
        });
      });
    }
    var stopLoad = every(2000, function () {
      return load().then(function () { deviceApps(); return packages(); }, function (e) {
        // Not the caller's phone, or deleted: nothing more to show.
        if (e.status === 404) { stopLoad(); if (stopShots) stopShots(); }
        throw e;
      });
    });
    var stopShots = null;
    var appsShown = false;
    // deviceApps lists the apps on the phone (their install state, live) and
    // installs one of the user's uploaded apps on it; it starts once the
    // phone has loaded, so that a phone that is not the user's asks no more.
    function deviceApps() {
      if (appsShown || !has("install") || !has("apps")) return;
      appsShown = true;
      var form = $("#install-form"), select = $("#install-app");
      api("GET", "/api/v1/apps?limit=100").then(function (p) {
        (p.apps || []).forEach(function (a) {
          select.appendChild(el("option", { value: a.id, text: (a.label || a.package) + " " + (a.version_name || a.version_code) }));
        });
      }).catch(showError);
      function list() {
        return api("GET", "/api/v1/devices/" + id + "/apps").then(function (l) {
          var tb = clear($("#device-apps tbody"));
          (l.apps || []).forEach(function (a) {
            var settled = a.state === "installed" || a.state === "failed";
            tb.appendChild(el("tr", { "data-package": a.package, "data-state": a.state },
              el("td", { text: (a.label || a.package) + " (" + a.package + ")" }),
              el("td", { text: a.version_name || String(a.version_code) }),
              el("td", { text: a.state + (a.reason ? ": " + a.reason : "") }),
              el("td", null, settled ? el("button", { type: "button", text: "Uninstall", onclick: function () {
                api("DELETE", "/api/v1/devices/" + id + "/apps/" + encodeURIComponent(a.package)).then(list).catch(showError);
              } }) : null)));
          });
        });
      }
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        busy(form, true);
        api("POST", "/api/v1/devices/" + id + "/apps", { app_id: select.value }).then(list).catch(showError)
          .then(function () { busy(form, false); });
      });
      every(2000, list);
    }
    Array.prototype.forEach.call(document.querySelectorAll(".actions button"), function (b) {
      b.addEventListener("click", function () {
        var act = b.getAttribute("data-act");
        phoneAction(id, dev ? dev.name : id, act).then(function (done) {
          if (done && act === "delete") location.assign("/console/phones");
          else if (done) load();
        }).catch(showError);
      });
    });
    if (!has("adb")) return;
    stopShots = every(1000, screenshot);
    img.addEventListener("click", function (ev) {
      var r = img.getBoundingClientRect();
      var x = Math.round((ev.clientX - r.left) * img.naturalWidth / r.width);
      var y = Math.round((ev.clientY - r.top) * img.naturalHeight / r.height);
      shell("input tap " + x + " " + y).then(function (res) {
        if (res.exit_code !== 0) flash("The tap failed: " + (res.stderr || res.stdout), "error");
      }).catch(showError);
    });
    function quote(s) { return "'" + s.replace(/'/g, "'\\''") + "'"; }
    $("#text-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var f = ev.target, t = f.elements.text.value;
      if (!t) return;
      shell("input text " + quote(t.replace(/ /g, "%s"))).then(function (res) {
        if (res.exit_code !== 0) flash("The text was not sent: " + (res.stderr || res.stdout), "error");
        else f.reset();
      }).catch(showError);
    });
    $("#shell-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var f = ev.target, out = $("#shell-out");
      busy(f, true);
      out.textContent = "…";
      shell(f.elements.command.value).then(function (r) {
        out.textContent = r.stdout + (r.stderr ? "\n" + r.stderr : "") + "\n[exit " + r.exit_code + (r.timed_out ? ", timed out" : "") + (r.truncated ? ", truncated" : "") + "]";
      }).catch(function (e) { out.textContent = ""; showError(e); }).then(function () { busy(f, false); });
    });
    var follow = null;
    $("#log-toggle").addEventListener("click", function () {
      if (follow) { follow.abort(); return; }
      follow = new AbortController();
      var btn = $("#log-toggle"), pre = $("#log");
      btn.textContent = "Stop following";
      raw("GET", "/api/v1/devices/" + id + "/logs", { signal: follow.signal, headers: { Accept: "text/event-stream" } }).then(function (resp) {
        if (!resp.ok) return readBody(resp).then(function (b) { throw apiError(resp, b); });
        var reader = resp.body.getReader(), dec = new TextDecoder(), buf = "";
        function pump() {
          return reader.read().then(function (r) {
            if (r.done) return;
            buf += dec.decode(r.value, { stream: true });
            var lines = buf.split("\n");
            buf = lines.pop();
            lines.forEach(function (l) {
              if (l.indexOf("data:") === 0) pre.appendChild(document.createTextNode(l.slice(5).replace(/^ /, "") + "\n"));
            });
            while (pre.childNodes.length > 500) pre.removeChild(pre.firstChild);
            pre.scrollTop = pre.scrollHeight;
            return pump();
          });
        }
        return pump();
      }).catch(function (e) { if (e.name !== "AbortError") showError(e); }).then(function () {
        follow = null;
        btn.textContent = "Follow the log";
      });
    });
  };

  // ---- apps ----
  pages.apps = function () {
    function load() {
      return api("GET", "/api/v1/apps").then(function (r) {
        var tb = clear($("#apps tbody"));
        (r.apps || []).forEach(function (a) {
          var more = el("button", { type: "button", class: "small", text: "Details" });
          more.addEventListener("click", function () { details(a.id); });
          var apk = a.apk || a;
          tb.appendChild(el("tr", null, el("td", { text: apk.label || a.filename }), el("td", { text: apk.package || "" }),
            el("td", { text: apk.version_name || "" }), el("td", { text: Math.round(a.size / 1024) + " KB" }), el("td", null, more)));
        });
      });
    }
    function details(appID) {
      api("GET", "/api/v1/apps/" + appID).then(function (a) {
        var box = clear($("#app-details"));
        box.hidden = false;
        var apk = a.apk || a;
        box.appendChild(el("h2", { text: apk.label || a.filename }));
        var t = el("table", { class: "kv" });
        [["Package", apk.package], ["Version", apk.version_name + " (" + apk.version_code + ")"], ["SDK", apk.min_sdk + " – " + apk.target_sdk],
          ["SHA-256", a.sha256], ["Uploaded", when(a.created_at)], ["Permissions", (apk.permissions || []).join(", ")]].forEach(function (r) {
          t.appendChild(el("tr", null, el("th", { text: r[0] }), el("td", { text: r[1] === undefined ? "" : String(r[1]) })));
        });
        box.appendChild(t);
      }).catch(showError);
    }
    var form = $("#upload-form");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var file = form.elements.file.files[0];
      if (!file) return;
      flash("");
      busy(form, true);
      var bar = $("#upload-progress"), status = $("#upload-status");
      bar.hidden = false;
      bar.value = 0;
      function send(retried) {
        var fd = new FormData();
        fd.append("file", file);
        var x = new XMLHttpRequest();
        x.open("POST", "/api/v1/apps");
        x.setRequestHeader("Authorization", "Bearer " + accessToken);
        x.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable) {
            bar.value = Math.round(100 * e.loaded / e.total);
            status.textContent = Math.round(e.loaded / 1024) + " of " + Math.round(e.total / 1024) + " KB";
          }
        });
        x.upload.addEventListener("load", function () { status.textContent = "Checking the APK…"; });
        x.addEventListener("load", function () {
          var body = null;
          try { body = JSON.parse(x.responseText); } catch (e) { body = null; }
          if (x.status === 401 && !retried) { refresh().then(function () { send(true); }, toLogin); return; }
          busy(form, false);
          bar.hidden = true;
          if (x.status >= 200 && x.status < 300) {
            status.textContent = "";
            flash("Uploaded " + file.name + ".", "ok");
            form.reset();
            load().catch(showError);
          } else {
            status.textContent = "";
            showError(apiError({ status: x.status, statusText: x.statusText }, body));
          }
        });
        x.addEventListener("error", function () {
          busy(form, false);
          bar.hidden = true;
          status.textContent = "";
          flash("The upload did not reach the platform.", "error");
        });
        x.send(fd);
      }
      send(false);
    });
    load().catch(showError);
  };

  // ---- notifications ----
  function notificationItem(n, withButton) {
    var li = el("li", { class: n.read_at ? "read" : "unread" },
      el("strong", { text: n.title || n.type }), " ", el("small", { text: when(n.created_at) }),
      n.body ? el("div", { text: n.body }) : null);
    if (withButton && !n.read_at) {
      var b = el("button", { type: "button", class: "small", text: "Mark read" });
      b.addEventListener("click", function () {
        api("POST", "/api/v1/notifications/" + n.id + "/read").then(function () { pages.notifications.load(); }).catch(showError);
      });
      li.appendChild(b);
    }
    return li;
  }
  pages.notifications = function () {
    function load() {
      return api("GET", "/api/v1/notifications?limit=50").then(function (p) {
        var ul = clear($("#inbox"));
        (p.items || []).forEach(function (n) { ul.appendChild(notificationItem(n, true)); });
        if (!(p.items || []).length) ul.appendChild(el("li", { text: "Nothing yet." }));
        $("#unread").textContent = p.unread_count + " unread";
      }).catch(showError);
    }
    pages.notifications.load = load;
    $("#read-all").addEventListener("click", function () {
      api("POST", "/api/v1/notifications/read-all").then(load).catch(showError);
    });
    every(5000, load);
    preferences().catch(showError);
  };

  // ---- preferences ----
  var channels = ["in_app", "email", "webhook"];
  var channelNames = { in_app: "in the console", email: "email", webhook: "webhook" };
  function preferences() {
    var form = $("#prefs-form");
    return api("GET", "/api/v1/notifications/preferences").then(function (r) {
      var tb = clear($("#prefs tbody"));
      (r.preferences || []).forEach(function (p) {
        var row = el("tr", { "data-type": p.type }, el("td", { text: p.type.replace(/[._]/g, " ") }));
        channels.forEach(function (c) {
          row.appendChild(el("td", null, el("label", { class: "check" },
            el("input", { type: "checkbox", name: c, checked: !!p[c], "aria-label": channelNames[c] + " for " + p.type }), cellLabel(" " + channelNames[c]))));
        });
        tb.appendChild(row);
      });
      if (form.dataset.bound) return;
      form.dataset.bound = "1";
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var list = Array.prototype.map.call(form.querySelectorAll("tbody tr"), function (row) {
          var p = { type: row.getAttribute("data-type") };
          channels.forEach(function (c) { p[c] = row.querySelector('input[name="' + c + '"]').checked; });
          return p;
        });
        busy(form, true);
        api("PUT", "/api/v1/notifications/preferences", { preferences: list }).then(function () {
          flash("Preferences saved.", "ok");
        }).catch(showError).then(function () { busy(form, false); });
      });
    });
  }

  // ---- webhooks ----
  pages.webhooks = function () {
    var form = $("#webhook-form");
    function deliveries(h) {
      $("#deliveries-box").hidden = false;
      $("#deliveries-url").textContent = h.url;
      return api("GET", "/api/v1/webhooks/" + h.id + "/deliveries?limit=50").then(function (r) {
        var tb = clear($("#deliveries tbody"));
        (r.items || []).forEach(function (d) {
          var last = (d.attempts || [])[(d.attempts || []).length - 1];
          var detail = last ? (last.status_code ? "answered " + last.status_code : (last.error || "")) : "";
          var resend = null;
          if (d.status !== "pending") {
            resend = el("button", { type: "button", class: "small", text: "Send again" });
            resend.addEventListener("click", function () {
              api("POST", "/api/v1/webhooks/" + h.id + "/deliveries/" + d.id + "/resend").then(function () {
                flash("Queued again.", "ok");
                return deliveries(h);
              }).catch(showError);
            });
          }
          tb.appendChild(el("tr", { "data-delivery": d.id, "data-status": d.status },
            el("td", null, el("strong", { text: d.type }), el("div", { class: "hint", text: when(d.created_at) })),
            el("td", { text: d.status === "failed" ? "failed, gave up" : d.status }),
            el("td", { text: (d.attempts || []).length + (detail ? " (last " + detail + ")" : "") }),
            el("td", null, resend)));
        });
        if (!(r.items || []).length) tb.appendChild(el("tr", null, el("td", { colspan: "4", text: "Nothing sent yet." })));
      });
    }
    function load() {
      return api("GET", "/api/v1/webhooks").then(function (r) {
        var tb = clear($("#webhooks tbody"));
        var items = r.items || [];
        $("#webhooks-empty").hidden = items.length > 0;
        items.forEach(function (h) {
          var show = el("button", { type: "button", class: "small", text: "Deliveries" });
          show.addEventListener("click", function () { deliveries(h).catch(showError); });
          var del = el("button", { type: "button", class: "small danger", text: "Delete" });
          del.addEventListener("click", function () {
            confirmAction("Delete the endpoint " + h.url + "?").then(function (ok) {
              if (ok) return api("DELETE", "/api/v1/webhooks/" + h.id).then(function () { $("#deliveries-box").hidden = true; return load(); });
            }).catch(showError);
          });
          tb.appendChild(el("tr", { "data-webhook": h.id }, el("td", { text: h.url }), el("td", { text: (h.event_types || []).join(", ") }),
            el("td", { text: h.active ? "yes" : "no" }), el("td", null, show, " ", del)));
        });
      });
    }
    api("GET", "/api/v1/notifications/preferences").then(function (r) {
      var fs = $("#webhook-types");
      (r.preferences || []).forEach(function (p) {
        fs.appendChild(el("label", { class: "check" }, el("input", { type: "checkbox", name: "type", value: p.type }), " " + p.type));
      });
    }).catch(showError);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var types = Array.prototype.map.call(form.querySelectorAll('input[name="type"]:checked'), function (i) { return i.value; });
      if (!types.length) { flash("Choose at least one notification.", "error"); return; }
      busy(form, true);
      api("POST", "/api/v1/webhooks", { url: form.querySelector('[name="url"]').value.trim(), event_types: types }).then(function (h) {
        $("#secret").textContent = h.secret;
        $("#webhook-secret").hidden = false;
        flash("Endpoint added.", "ok");
        form.reset();
        return load();
      }).catch(showError).then(function () { busy(form, false); });
    });
    load().catch(showError);
  };

  // ---- admin ----
  pages.admin = function () {
    function users() {
      return api("GET", "/api/v1/admin/users?limit=100").then(function (r) {
        var tb = clear($("#users tbody"));
        (r.users || []).forEach(function (u) {
          var roles = el("input", { value: (u.roles || []).join(","), size: 12, "aria-label": "roles of " + u.username });
          var saveRoles = el("button", { type: "button", class: "small", text: "Set" });
          saveRoles.addEventListener("click", function () {
            var list = roles.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
            api("PUT", "/api/v1/admin/users/" + u.id + "/roles", { roles: list }).then(function () { flash("Roles of " + u.username + " set.", "ok"); }).catch(showError);
          });
          var next = u.status === "active" ? "disabled" : "active";
          var status = el("button", { type: "button", class: "small", text: next === "disabled" ? "Disable" : "Enable" });
          status.addEventListener("click", function () {
            confirmAction((next === "disabled" ? "Disable " : "Enable ") + u.username + "?").then(function (ok) {
              if (ok) return api("PUT", "/api/v1/admin/users/" + u.id + "/status", { status: next }).then(users);
            }).catch(showError);
          });
          var amount = el("input", { type: "number", step: "0.01", min: "0.01", size: 6, "aria-label": "credit for " + u.username, "data-credit": u.username });
          var credit = el("button", { type: "button", class: "small", text: "Credit" });
          credit.addEventListener("click", function () {
            var minor = Math.round(parseFloat(amount.value) * 100);
            if (!(minor > 0)) { flash("Enter an amount above zero.", "error"); return; }
            api("POST", "/api/v1/admin/users/" + u.id + "/credit", { amount: minor, reason: "credit from the console" }, { "Idempotency-Key": uuid() })
              .then(function () { amount.value = ""; flash("Credited " + u.username + ".", "ok"); }).catch(showError);
          });
          tb.appendChild(el("tr", null, el("td", null, el("strong", { text: u.username }), el("div", { class: "hint", text: u.email })),
            el("td", null, roles, saveRoles), el("td", null, u.status + " ", status), el("td", null, amount, credit)));
        });
      });
    }
    function plans() {
      return api("GET", "/api/v1/plans").then(function (r) {
        var tb = clear($("#admin-plans tbody"));
        (r.plans || []).forEach(function (p) {
          var price = el("input", { type: "number", name: "price", step: "0.01", min: "0", size: 6, value: (p.price / 100).toFixed(2), "aria-label": "price of " + p.name });
          var days = el("input", { type: "number", name: "period_days", min: "1", size: 3, value: p.period_days, "aria-label": "days of " + p.name });
          var idle = el("input", { type: "number", name: "idle_minutes", min: "0", size: 4, value: (p.quota || {}).idle_minutes || 0, "aria-label": "idle minutes of " + p.name });
          var active = el("input", { type: "checkbox", name: "active", checked: p.active, "aria-label": p.name + " on sale" });
          var save = el("button", { type: "button", class: "small", text: "Save" });
          save.addEventListener("click", function () {
            var q = Object.assign({}, p.quota, { idle_minutes: parseInt(idle.value, 10) || 0 });
            var body = { name: p.name, price: Math.round(parseFloat(price.value) * 100), currency: p.currency,
              period_days: parseInt(days.value, 10), quota: q, active: active.checked };
            if (!(body.price >= 0) || !(body.period_days >= 1)) { flash("Enter a price and at least one day.", "error"); return; }
            api("PUT", "/api/v1/admin/plans/" + p.id, body).then(function () {
              flash("Plan " + p.name + " saved.", "ok");
              return plans();
            }).catch(showError);
          });
          tb.appendChild(el("tr", { "data-plan-row": p.id }, el("td", { text: p.name }), el("td", null, cellLabel("Price"), price, " " + p.currency),
            el("td", null, cellLabel("Days"), days), el("td", null, cellLabel("Idle minutes"), idle), el("td", null, cellLabel("On sale"), active), el("td", null, save)));
        });
      });
    }
    function nodes() {
      return api("GET", "/api/v1/admin/nodes").then(function (r) {
        var tb = clear($("#nodes tbody"));
        (r.nodes || []).forEach(function (n) {
          var status = el("select", { name: "status", "aria-label": "status of " + n.name },
            el("option", { value: "active", text: "active", selected: n.status === "active" }),
            el("option", { value: "draining", text: "draining", selected: n.status === "draining" }));
          var cpu = el("input", { type: "number", name: "cpu_cores", min: "0", size: 4, value: n.cpu_cores, "aria-label": "cores of " + n.name });
          var mem = el("input", { type: "number", name: "memory_mb", min: "0", size: 7, value: n.memory_mb, "aria-label": "memory of " + n.name });
          var save = el("button", { type: "button", class: "small", text: "Save" });
          save.addEventListener("click", function () {
            var body = { status: status.value, cpu_cores: parseInt(cpu.value, 10), memory_mb: parseInt(mem.value, 10) };
            api("PUT", "/api/v1/admin/nodes/" + n.id, body).then(function () {
              flash("Node " + n.name + " saved.", "ok");
              return nodes();
            }).catch(showError);
          });
          tb.appendChild(el("tr", { "data-node": n.id }, el("td", { text: n.name }), el("td", null, status),
            el("td", null, cellLabel("CPU in use / cores"), n.allocated_cpu_cores + " / ", cpu), el("td", null, cellLabel("Memory in use / MB"), n.allocated_memory_mb + " / ", mem),
            el("td", null, cellLabel("Phones"), String(n.devices)), el("td", null, save)));
        });
      });
    }
    function bans() {
      return api("GET", "/api/v1/admin/ip-bans").then(function (r) {
        var tb = clear($("#bans tbody"));
        (r.entries || []).forEach(function (b) {
          var lift = el("button", { type: "button", class: "small", text: "Lift" });
          lift.addEventListener("click", function () { api("DELETE", "/api/v1/admin/ip-bans/" + b.range).then(bans).catch(showError); });
          tb.appendChild(el("tr", null, el("td", { text: b.range }), el("td", { text: (b.reason || "") + " (" + b.source + ")" }),
            el("td", { text: b.expires_at ? when(b.expires_at) : "never" }), el("td", null, b.source === "config" ? null : lift)));
        });
      });
    }
    function mail() {
      return api("GET", "/api/v1/admin/mail?limit=20").then(function (r) {
        var ul = clear($("#mail"));
        (r.items || []).forEach(function (m) {
          ul.appendChild(el("li", null, el("strong", { text: m.subject || m.Subject || "(no subject)" }), " to " + (m.envelope.to || []).join(", ") + " ", el("small", { text: when(m.received_at) })));
        });
        if (!(r.items || []).length) ul.appendChild(el("li", { text: "No mail caught." }));
      }).catch(function (e) {
        // The catcher answers 404 where a real mail server is used.
        clear($("#mail")).appendChild(el("li", { text: e.status === 404 ? "No mail catcher on this platform." : e.message }));
      });
    }
    $("#ban-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = formValues(ev.target);
      api("PUT", "/api/v1/admin/ip-bans/" + v.entry.trim(), { reason: v.reason }).then(function () { ev.target.reset(); return bans(); }).catch(showError);
    });
    function deadLetters() {
      return api("GET", "/api/v1/admin/dead-letters?limit=50").then(function (r) {
        var tb = clear($("#dead-letters tbody"));
        (r.items || []).forEach(function (l) {
          var again = el("button", { type: "button", class: "small", text: "Send again" });
          again.addEventListener("click", function () {
            confirmAction("Send " + l.type + " to the broker again?").then(function (ok) {
              if (ok) return api("POST", "/api/v1/admin/dead-letters/" + l.id + "/redrive").then(function () {
                flash("Sent " + l.type + " again.", "ok");
                return deadLetters();
              });
            }).catch(showError);
          });
          var sent = l.redriven_at ? "sent again " + when(l.redriven_at) : (l.redrives ? "failed again after " + l.redrives + " re-drive(s)" : "");
          tb.appendChild(el("tr", { "data-dead-letter": l.id, "data-redrives": l.redrives },
            el("td", null, el("strong", { text: l.type }), el("div", { class: "hint", text: l.event_id })),
            el("td", null, cellLabel("Refused by"), l.destination || "?"),
            el("td", null, cellLabel("Error"), (l.error_code || "") + (l.error_data ? " " + l.error_data : "")),
            el("td", null, when(l.received_at), sent ? el("div", { class: "hint", text: sent }) : null),
            el("td", null, again)));
        });
        if (!(r.items || []).length) tb.appendChild(el("tr", null, el("td", { colspan: "5", text: "None: every event reached its functions." })));
      });
    }
    [users, plans, nodes, bans].forEach(function (f) { f().catch(showError); });
    if (has("deadletters")) deadLetters().catch(showError);
    if (has("mail")) mail();
  };

  // ---- start ----
  function start() {
    var page = document.body.getAttribute("data-page");
    if (document.body.hasAttribute("data-public")) {
      if (pages[page]) pages[page]();
      return;
    }
    // The CSRF cookie lives as long as the session cookie: without it there
    // is no session to renew.
    if (!cookie("cp_csrf")) { toLogin(); return; }
    refresh().then(function () { return api("GET", "/api/v1/users/me"); }).then(function (u) {
      me = u;
      $("#who").textContent = u.username;
      $("#nav").hidden = false;
      var lo = $("#logout");
      lo.hidden = false;
      lo.addEventListener("click", function () {
        sessionCall("/api/v1/auth/logout", {}).catch(function () {}).then(function () {
          accessToken = "";
          location.assign("/console/login");
        });
      });
      if ((u.roles || []).indexOf("admin") >= 0) {
        Array.prototype.forEach.call(document.querySelectorAll("[data-admin]"), function (a) { a.hidden = false; });
      }
      if (pages[page]) pages[page]();
    }, function (e) {
      if (e.status === 401 || e.status === 403) toLogin();
      else showError(e);
    });
  }
  document.addEventListener("DOMContentLoaded", start);
})();
