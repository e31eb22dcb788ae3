/* hwbot simulator page: plays the LINE app. Sends events through /sim/send (signed webhooks to
 * /callback), polls /sim/messages for what the bot sent to the stand-in Messaging API, and draws LINE
 * messages: text (links), quick replies, Flex bubbles and carousels, a few templates; alt text otherwise.
 * Everything is drawn with textContent / DOM nodes: nothing the bot sends is parsed as HTML. */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var chat = $("chat"), quick = $("quick"), input = $("text"), staffList = $("staff");
  var state = { user: null, users: [], after: 0, pending: 0, loading: false, lastDay: null, lastFrom: null,
                lastBot: null, quickFor: null, staffAfter: "", staffCount: 0, generation: 0 };

  // ---- helpers -----------------------------------------------------------------------------------
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }
  function api(method, url, body) {
    var options = { method: method, headers: {} };
    if (body !== undefined) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { var error = new Error(data.error || ("HTTP " + response.status)); error.status = response.status; throw error; }
        return data;
      });
    });
  }
  function setStatus(text) { $("status").textContent = text || ""; }
  function busy() { document.body.dataset.busy = state.pending > 0 ? "1" : "0"; }
  var WEEK = ["日", "月", "火", "水", "木", "金", "土"];
  function dayLabel(iso) {
    var d = iso.slice(0, 10).split("-").map(Number);
    var weekday = new Date(Date.UTC(d[0], d[1] - 1, d[2])).getUTCDay();
    return d[0] + "年" + d[1] + "月" + d[2] + "日(" + WEEK[weekday] + ")";
  }
  function hhmm(iso) { return iso ? iso.slice(11, 16) : ""; }

  // URLs, tel: links and Japanese phone numbers become links (as the LINE app does).
  var LINK = /(https?:\/\/[^\s\u3000「」（）()<>"]+|tel:[0-9+\-]+|\b0\d{1,4}-\d{1,4}-\d{3,4}\b)/g;
  function linkify(parent, text) {
    var last = 0, match;
    LINK.lastIndex = 0;
    while ((match = LINK.exec(text)) !== null) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      var target = match[0], a = el("a", null, target);
      a.href = /^(https?:|tel:)/.test(target) ? target : "tel:" + target;
      if (/^https?:/.test(target)) { a.target = "_blank"; a.rel = "noopener"; }
      parent.appendChild(a);
      last = match.index + target.length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
    return parent;
  }

  // ---- actions (buttons, chips, rich menu areas) ------------------------------------------------
  function label(action) { return (action && (action.label || action.text || action.displayText)) || "（ボタン）"; }

  // A clickable element for a LINE action: <a> for uri (page or tel:), <button> otherwise.
  function actionElement(action, cls, text) {
    var node;
    if (action && action.type === "uri") {
      node = el("a", cls, text);
      node.href = action.uri || (action.altUri && action.altUri.desktop) || "#";
      if (!/^tel:/.test(node.getAttribute("href"))) { node.target = "_blank"; node.rel = "noopener"; }
    } else {
      node = el("button", cls, text);
      node.type = "button";
      if (!action || ["postback", "message", "clipboard"].indexOf(action.type) < 0) {
        node.disabled = true;
        node.title = "シミュレーターでは使えない操作です" + (action ? " (" + action.type + ")" : "");
      } else {
        node.addEventListener("click", function () { perform(action); });
      }
    }
    node.classList.add("tap");
    node.dataset.label = text;
    if (action && action.type) node.dataset.action = action.type;
    return node;
  }

  function perform(action) {
    if (!action) return;
    if (action.type === "postback") {
      send("postback", action.data || "", action.displayText || null);
      if (action.inputOption === "openKeyboard") {
        input.value = action.fillInText || "";
        input.focus();
      }
    } else if (action.type === "message") {
      send("text", action.text || "");
    } else if (action.type === "clipboard" && navigator.clipboard) {
      navigator.clipboard.writeText(action.clipText || "");
      setStatus("コピーしました");
    }
  }

  // ---- Flex -------------------------------------------------------------------------------------
  var SIZES = { xxs: 11, xs: 13, sm: 14, md: 16, lg: 19, xl: 22, xxl: 29, "3xl": 35, "4xl": 48, "5xl": 74 };
  var SPACES = { none: 0, xs: 2, sm: 4, md: 8, lg: 12, xl: 16, xxl: 20 };
  function size(value, table) {
    if (value == null) return null;
    if (table[value] != null) return table[value] + "px";
    if (/^\d+(\.\d+)?(px|%)$/.test(String(value))) return String(value);
    return null;
  }
  function applyBox(node, c) {
    var pads = { paddingAll: "padding", paddingTop: "paddingTop", paddingBottom: "paddingBottom",
                 paddingStart: "paddingLeft", paddingEnd: "paddingRight" };
    Object.keys(pads).forEach(function (key) { var v = size(c[key], SPACES); if (v) node.style[pads[key]] = v; });
    if (c.backgroundColor) node.style.backgroundColor = c.backgroundColor;
    if (c.cornerRadius) node.style.borderRadius = size(c.cornerRadius, SPACES) || "";
    if (c.borderWidth) node.style.borderStyle = "solid";
    if (c.borderWidth) node.style.borderWidth = ({ none: "0", light: "0.5px", normal: "1px", medium: "2px", "semi-bold": "3px", bold: "4px" })[c.borderWidth] || c.borderWidth;
    if (c.borderColor) node.style.borderColor = c.borderColor;
    if (c.width) node.style.width = c.width;
    if (c.height) node.style.height = c.height;
    if (c.justifyContent) node.style.justifyContent = c.justifyContent.replace("space-", "space-");
    if (c.alignItems) node.style.alignItems = c.alignItems;
  }
  function placeChild(node, c, parentLayout, index, spacing) {
    var horizontal = parentLayout === "horizontal" || parentLayout === "baseline";
    var flex = c.flex != null ? c.flex : (horizontal ? 1 : 0);
    if (c.type !== "separator" && c.type !== "spacer") {
      node.style.flex = flex > 0 ? flex + " 1 0" : "0 0 auto";
    }
    var gap = size(c.margin, SPACES) || (index > 0 ? spacing : null);
    if (gap && index > 0) node.style[horizontal ? "marginLeft" : "marginTop"] = gap;
    if (c.gravity && horizontal) node.style.alignSelf = ({ top: "flex-start", bottom: "flex-end", center: "center" })[c.gravity];
    if (c.align && !horizontal && c.type !== "text") node.style.alignSelf = ({ start: "flex-start", end: "flex-end", center: "center" })[c.align];
  }
  function flexComponent(c, parentLayout) {
    var node;
    switch (c && c.type) {
      case "box":
        node = el("div", "fx-box fx-" + (c.layout || "vertical"));
        applyBox(node, c);
        var spacing = size(c.spacing, SPACES);
        (c.contents || []).forEach(function (child, i) {
          var childNode = flexComponent(child, c.layout || "vertical");
          if (childNode) { placeChild(childNode, child, c.layout || "vertical", i, spacing); node.appendChild(childNode); }
        });
        break;
      case "text":
        node = el("div", "fx-text" + (c.wrap ? " wrap" : ""));
        if (c.contents && c.contents.length) {
          c.contents.forEach(function (span) {
            var s = el("span", null, span.text || "");
            if (span.color) s.style.color = span.color;
            if (span.weight === "bold") s.style.fontWeight = "700";
            if (span.size) s.style.fontSize = size(span.size, SIZES) || "";
            if (span.decoration === "line-through") s.style.textDecoration = "line-through";
            if (span.decoration === "underline") s.style.textDecoration = "underline";
            node.appendChild(s);
          });
        } else {
          node.textContent = c.text || "";  // the LINE app links nothing inside Flex texts
        }
        node.style.fontSize = size(c.size || "md", SIZES) || "16px";
        if (c.weight === "bold") node.style.fontWeight = "700";
        if (c.color) node.style.color = c.color;
        if (c.align) node.style.textAlign = ({ start: "left", end: "right", center: "center" })[c.align] || "";
        if (c.decoration === "underline") node.style.textDecoration = "underline";
        if (c.decoration === "line-through") node.style.textDecoration = "line-through";
        if (c.style === "italic") node.style.fontStyle = "italic";
        if (c.maxLines) { node.style.display = "-webkit-box"; node.style.webkitLineClamp = String(c.maxLines); node.style.webkitBoxOrient = "vertical"; node.style.overflow = "hidden"; }
        if (c.action) { node.classList.add("tappable"); node.addEventListener("click", function (e) { if (e.target.tagName !== "A") perform(c.action); }); }
        break;
      case "button":
        node = actionElement(c.action, "fx-btn fx-" + (c.style || "link") + (c.height === "sm" ? " h-sm" : ""), label(c.action));
        if (c.color) { if ((c.style || "link") === "link") node.style.color = c.color; else node.style.backgroundColor = c.color; }
        break;
      case "separator":
        node = el("hr", "fx-sep");
        if (c.color) node.style.borderTopColor = c.color;
        if (parentLayout !== "vertical") { node.style.borderTop = "none"; node.style.borderLeft = "1px solid " + (c.color || "#e2e5e9"); node.style.width = "0"; }
        var m = size(c.margin, SPACES);
        if (m) node.style[parentLayout === "vertical" ? "marginTop" : "marginLeft"] = m;
        break;
      case "filler":
        node = el("div", "fx-filler");
        break;
      case "spacer":
        node = el("div", "fx-spacer");
        node.style.height = size(c.size || "md", SPACES) || "8px";
        break;
      case "image":
      case "icon":
        node = el("img", "fx-image");
        node.src = c.url || "";
        node.alt = c.altText || "画像";
        if (c.aspectRatio && /^\d+:\d+$/.test(c.aspectRatio)) node.style.aspectRatio = c.aspectRatio.replace(":", " / ");
        node.style.width = c.size === "full" || !c.size ? "100%" : (size(c.size, SIZES) || "60px");
        if (c.action) { node.classList.add("tappable"); node.addEventListener("click", function () { perform(c.action); }); }
        break;
      default:
        node = el("div", "fx-unknown", "[未対応の部品: " + (c && c.type) + "]");
    }
    return node;
  }
  function flexBubble(b) {
    if (!b || b.type !== "bubble") return null;
    var node = el("div", "fx-bubble size-" + (b.size || "mega"));
    var styles = b.styles || {};
    ["header", "hero", "body", "footer"].forEach(function (part) {
      if (!b[part]) return;
      var block = el("div", "fx-block fx-" + part);
      if (part === "hero") block.style.padding = "0";
      var inner = flexComponent(b[part], "vertical");
      if (inner) block.appendChild(inner);
      var st = styles[part] || {};
      if (st.backgroundColor) block.style.backgroundColor = st.backgroundColor;
      if (st.separator) block.style.borderTop = "1px solid " + (st.separatorColor || "#e2e5e9");
      node.appendChild(block);
    });
    if (b.action) { node.classList.add("tappable"); node.addEventListener("click", function (e) { if (e.target === node) perform(b.action); }); }
    return node;
  }
  function flexMessage(message) {
    var contents = message.contents || {};
    if (contents.type === "bubble") return flexBubble(contents);
    if (contents.type === "carousel") {
      var row = el("div", "fx-carousel");
      (contents.contents || []).forEach(function (b) { var n = flexBubble(b); if (n) row.appendChild(n); });
      return row;
    }
    return null;
  }

  // Template messages (buttons, confirm): drawn as a small bubble with buttons.
  function templateMessage(message) {
    var t = message.template || {};
    if (t.type !== "buttons" && t.type !== "confirm") return null;
    var node = el("div", "fx-bubble");
    var body = el("div", "fx-block");
    if (t.title) body.appendChild(el("div", "fx-text wrap", t.title)).style.fontWeight = "700";
    body.appendChild(linkify(el("div", "fx-text wrap"), t.text || ""));
    (t.actions || []).forEach(function (a) {
      var b = actionElement(a, "fx-btn fx-link", label(a));
      b.style.marginTop = "6px";
      body.appendChild(b);
    });
    node.appendChild(body);
    return node;
  }

  // ---- the chat ---------------------------------------------------------------------------------
  var typing = (function () {
    var row = el("div", "row bot typing");
    row.appendChild(el("div", "avatar", "HW"));
    var bubble = el("div", "bubble");
    bubble.appendChild(el("span")); bubble.appendChild(el("span")); bubble.appendChild(el("span"));
    row.appendChild(bubble);
    row.hidden = true;
    return row;
  })();

  function drawItem(item) {
    if (item.at) {
      var day = item.at.slice(0, 10);
      if (day !== state.lastDay) {
        chat.insertBefore(el("div", "day", dayLabel(item.at).replace(/^\d+年/, "")), typing);
        state.lastDay = day; state.lastFrom = null;
      }
    }
    var node;
    if (item.from === "system") {
      node = el("div", "sys", item.text || "");
      state.lastFrom = null;
    } else if (item.from === "user") {
      node = el("div", "row user");
      node.appendChild(el("span", "time", hhmm(item.at)));
      if (item.type === "sticker") node.appendChild(el("div", "sticker", "🐻"));
      else node.appendChild(linkify(el("div", "bubble"), item.text || ""));
      state.lastFrom = "user";
    } else {
      node = el("div", "row bot" + (state.lastFrom === "bot" ? " cont" : ""));
      node.appendChild(el("div", "avatar", "HW"));
      var body = botMessage(item.message || {});
      if (body.querySelector && body.querySelector(".fx-carousel")) node.classList.add("wide");
      node.appendChild(body);
      node.appendChild(el("span", "time", hhmm(item.at)));
      node.dataset.via = item.via || "";
      state.lastFrom = "bot";
    }
    node.dataset.seq = item.seq;
    node.classList.add("item");
    chat.insertBefore(node, typing);
  }

  function botMessage(message) {
    var drawn = null;
    if (message.type === "text") drawn = linkify(el("div", "bubble"), message.text || "");
    else if (message.type === "flex") { drawn = flexMessage(message); if (drawn) { var wrap = el("div", "fx-wrap"); wrap.appendChild(drawn); drawn = wrap; } }
    else if (message.type === "template") drawn = templateMessage(message);
    else if (message.type === "sticker") drawn = el("div", "sticker", "🐰");
    else if (message.type === "image") { drawn = el("img", "fx-image"); drawn.src = message.previewImageUrl || message.originalContentUrl || ""; drawn.alt = "画像"; drawn.style.maxWidth = "200px"; drawn.style.borderRadius = "12px"; }
    return drawn || el("div", "alt", message.altText || message.text || ("type: " + message.type));
  }

  // Quick replies belong to the last message, and only while it is the last thing in the chat.
  // Redrawn only when they change, so a chip is never replaced under the pointer.
  function drawQuickReplies() {
    var owner = state.lastFrom === "bot" && state.lastBot && !state.pending ? state.lastBot.seq : null;
    if (owner === state.quickFor) return;
    state.quickFor = owner;
    quick.textContent = "";
    var message = owner !== null ? state.lastBot.message || {} : null;
    var items = message && message.quickReply && message.quickReply.items;
    if (!items) return;
    items.forEach(function (item) {
      quick.appendChild(actionElement(item.action, "qr", label(item.action)));
    });
  }

  function showTyping() {
    typing.hidden = !(state.pending > 0 || state.loading);
    chat.appendChild(typing);
  }

  function scrollDown() { chat.scrollTop = chat.scrollHeight; }

  function resetChat() {
    state.generation += 1;
    state.after = 0; state.lastDay = null; state.lastFrom = null; state.lastBot = null; state.loading = false;
    chat.textContent = "";
    chat.appendChild(typing);
    chat.dataset.seq = "0";
    quick.textContent = "";
    state.quickFor = null;
  }

  function poll() {
    var generation = state.generation, user = state.user;
    if (!user) return Promise.resolve();
    return api("GET", "/sim/messages?user=" + encodeURIComponent(user) + "&after=" + state.after).then(function (data) {
      if (generation !== state.generation) return;
      if (data.last < state.after) { resetChat(); return poll(); }  // the history was cleared
      var fresh = (data.items || []).filter(function (item) { return item.seq > state.after; });  // polls may overlap
      fresh.forEach(function (item) {
        drawItem(item);
        if (item.from === "bot") state.lastBot = item;
      });
      if (fresh.length) { state.after = fresh[fresh.length - 1].seq; chat.dataset.seq = String(state.after); }
      state.loading = !!data.loading;
      showTyping();
      drawQuickReplies();
      if (fresh.length) scrollDown();
    }).catch(function (error) { setStatus("受信エラー: " + error.message); });
  }

  function send(kind, text, display) {
    if (!state.user) return Promise.resolve();
    state.pending += 1; busy(); showTyping(); drawQuickReplies(); scrollDown();
    return api("POST", "/sim/send", { user: state.user, kind: kind, text: text || "", display: display || null })
      .then(function (data) { setStatus(data.ok ? "" : "Webhook の応答: " + data.status); })
      .catch(function (error) { setStatus("送信エラー: " + error.message); })
      .then(function () { state.pending -= 1; return poll(); })
      .then(function () { busy(); showTyping(); });
  }

  // ---- staff pane -------------------------------------------------------------------------------
  var KIND_LABELS = { booking: "新しい予約", cancellation: "キャンセル", handoff: "担当者対応の依頼",
                      handoff_message: "利用者から新しいメッセージ",
                      same_day_cancel: "当日キャンセル", change: "予約の変更" };
  function drawNotice(notice, fresh) {
    var li = el("li", "notice kind-" + (notice.kind || "other") + (fresh ? " fresh" : ""));
    li.dataset.kind = notice.kind || "";
    var head = el("div", "head");
    var kind = el("span", "kind", KIND_LABELS[notice.kind] || notice.kind || "通知");
    kind.appendChild(el("code", null, notice.kind || ""));
    head.appendChild(kind);
    head.appendChild(el("span", "at", notice.at ? dayLabel(notice.at).replace(/^\d+年/, "") + " " + hhmm(notice.at) : ""));
    li.appendChild(head);
    li.appendChild(el("div", "office", notice.office_name || notice.office || ""));
    li.appendChild(el("div", "summary", notice.summary || ""));
    var fields = notice.fields;
    if (fields && typeof fields === "object" && Object.keys(fields).length) {
      var dl = el("dl");
      Object.keys(fields).forEach(function (key) { dl.appendChild(el("dt", null, key)); dl.appendChild(el("dd", null, String(fields[key]))); });
      li.appendChild(dl);
    } else if (typeof fields === "string" && fields) {
      li.appendChild(el("div", "summary", fields));
    }
    staffList.insertBefore(li, staffList.firstChild);
  }
  var firstStaffPoll = true;
  function pollStaff() {
    var url = "/sim/staff" + (state.staffAfter ? "?after=" + encodeURIComponent(state.staffAfter) : "");
    return api("GET", url).then(function (data) {
      (data.items || []).forEach(function (n) { drawNotice(n, !firstStaffPoll); state.staffCount += 1; });
      firstStaffPoll = false;
      if (data.last) state.staffAfter = data.last;
      $("staffCount").textContent = String(state.staffCount);
    }).catch(function () { /* shown by the chat poll */ });
  }

  // ---- rich menu, users, wiring -----------------------------------------------------------------
  function drawRichMenu(menu) {
    var box = $("richmenu");
    box.textContent = "";
    if (!menu) return;
    var img = el("img");
    img.alt = "リッチメニュー";
    img.src = menu.image;
    img.onerror = function () { box.classList.add("noimage"); img.remove(); };
    box.appendChild(img);
    (menu.areas || []).forEach(function (area) {
      var b = area.bounds, button = actionElement(area.action, "area", label(area.action));
      button.textContent = "";
      button.title = label(area.action);
      button.setAttribute("aria-label", label(area.action));
      button.style.left = (100 * b.x / menu.size.width) + "%";
      button.style.top = (100 * b.y / menu.size.height) + "%";
      button.style.width = (100 * b.width / menu.size.width) + "%";
      button.style.height = (100 * b.height / menu.size.height) + "%";
      img.addEventListener("error", function () { button.textContent = label(area.action); });
      box.appendChild(button);
    });
    box.hidden = false;
  }

  function selectUser(id) {
    state.user = id;
    var user = state.users.filter(function (u) { return u.id === id; })[0];
    $("userid").textContent = id + (user ? "（" + user.name + "）" : "");
    $("language").value = (user && user.language) || "";
    resetChat();
    return poll().then(scrollDown);
  }

  function showNow(iso) {
    if (!iso) return;
    $("now").textContent = dayLabel(iso) + " " + hhmm(iso);
    $("clock").textContent = hhmm(iso);
  }

  function loop(fn, ms) { var run = function () { fn().then(function () { setTimeout(run, ms); }); }; setTimeout(run, ms); }

  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    send("text", text);
  });
  $("follow").addEventListener("click", function () { send("follow"); });
  $("unfollow").addEventListener("click", function () { send("unfollow"); });
  $("sticker").addEventListener("click", function () { send("sticker"); });
  $("menuToggle").addEventListener("click", function () { var m = $("richmenu"); m.hidden = !m.hidden; });
  $("clear").addEventListener("click", function () {
    api("POST", "/sim/clear", { user: state.user }).then(function () { resetChat(); return poll(); });
  });
  $("user").addEventListener("change", function (event) { selectUser(event.target.value); });
  $("language").addEventListener("change", function (event) {
    var language = event.target.value;
    api("POST", "/sim/profile", { user: state.user, language: language }).then(function () {
      state.users.forEach(function (u) { if (u.id === state.user) u.language = language; });
    }).catch(function (error) { setStatus("言語を設定できません: " + error.message); });
  });

  api("GET", "/sim/users").then(function (data) {
    state.users = data.users || [];
    var select = $("user");
    state.users.forEach(function (u) { var o = el("option", null, u.name + "（…" + u.id.slice(-4) + "）"); o.value = u.id; select.appendChild(o); });
    showNow(data.now);
    drawRichMenu(data.richmenu);
    return selectUser(state.users[0].id);
  }).then(function () {
    loop(function () { return state.pending ? Promise.resolve() : poll(); }, 1000);
    loop(pollStaff, 1500);
    loop(function () { return api("GET", "/sim/users").then(function (d) { showNow(d.now); }).catch(function () {}); }, 30000);
    return pollStaff();
  }).catch(function (error) { setStatus("シミュレーターを読み込めません: " + error.message); });
})();
