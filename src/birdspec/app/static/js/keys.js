// keys.js: the one document-level keyboard handler. main.js hands it the active page's bindings
// ({key: action}) and their help ([[keys, what they do]]); a key acts only on that page, never while typing in an
// input, textarea or select, and never with Ctrl, Alt or Meta held. An action that returns false leaves the key to
// the browser. "?" shows (and Escape hides) the help of the page shown, on every page.

let active = null;
let help = [];
let installed = false;

const GLOBAL_HELP = [["?", "show or hide this help"], ["Esc", "hide it"]];

/** The bindings of the page now shown and their help, or null. */
export function setBindings(bindings, pageHelp = []) {
  active = bindings || null;
  help = pageHelp || [];
  const box = document.querySelector("#key-help");
  if (box && !box.hidden) showHelp(box);
}

function showHelp(box) {
  const list = box.querySelector("dl");
  list.innerHTML = "";
  for (const [k, what] of [...help, ...GLOBAL_HELP]) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    for (const part of k.split(" ")) {
      if (part === "/" || part === "or") { dt.append(` ${part} `); continue; }
      const kbd = document.createElement("kbd");
      kbd.textContent = part;
      dt.append(kbd);
    }
    dd.textContent = what;
    list.append(dt, dd);
  }
  box.hidden = false;
}

function onKeydown(e) {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target instanceof Element && e.target.closest("input, textarea, select, [contenteditable]")) return;
  const box = document.querySelector("#key-help");
  if (box && (e.key === "?" || (e.key === "Escape" && !box.hidden))) {
    if (e.key === "?" && box.hidden) showHelp(box); else box.hidden = true;
    e.preventDefault();
    return;
  }
  if (!active) return;
  const action = Object.prototype.hasOwnProperty.call(active, e.key) ? active[e.key] : null;
  if (action && action(e) !== false) e.preventDefault();
}

/** Listen on the document (once, however often it is called). */
export function installKeys() {
  if (installed) return;
  installed = true;
  document.addEventListener("keydown", onKeydown);
}
