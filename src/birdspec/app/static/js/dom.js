// dom.js: the small DOM and formatting helpers every page shares (find and make elements, show a message,
// write and read times). No state and no knowledge of any page.

/** The first element under `root` matching `sel`. */
export const $ = (sel, root = document) => root.querySelector(sel);

/** A new element: `attrs` keys "class", "text", "on<event>" (a listener) or any attribute; buttons are type="button". */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  if (tag === "button" && !("type" in attrs)) e.type = "button";
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

/** Show `text` in the message element `node` ("error" or "ok"); no text clears it. */
export function say(node, text, kind = "error") {
  node.textContent = text || "";
  node.className = "msg " + (text ? kind : "");
}

/** Replace the options of `select` with `items` ([value, text] pairs), keeping the selection where it still exists. */
export function fillSelect(select, items, keep = select.value) {
  select.innerHTML = "";
  for (const [value, text] of items) select.append(el("option", { value, text }));
  if (keep && items.some(([value]) => value === keep)) select.value = keep;
}

/** 75.25 -> "1:15.3" */
export function fmtTime(s) {
  const m = Math.floor(s / 60), r = s - 60 * m;
  return `${m}:${r < 10 ? "0" : ""}${r.toFixed(1)}`;
}

/** "1:15.3" or "75.3" -> seconds; null when it is not a time. */
export function parseTime(t) {
  const parts = String(t).trim().split(":").map(Number);
  if (parts.some(isNaN)) return null;
  return parts.reduce((acc, v) => acc * 60 + v, 0);
}
