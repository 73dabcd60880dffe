// keys.js: the one document-level keyboard handler. main.js hands it the active page's bindings
// ({key: action}); a key acts only on that page, never while typing in an input, textarea or select, and
// never with Ctrl, Alt or Meta held. An action that returns false leaves the key to the browser.

let active = null;
let installed = false;

/** The bindings of the page now shown, or null. */
export function setBindings(bindings) {
  active = bindings || null;
}

function onKeydown(e) {
  if (!active || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target instanceof Element && e.target.closest("input, textarea, select, [contenteditable]")) return;
  const action = Object.prototype.hasOwnProperty.call(active, e.key) ? active[e.key] : null;
  if (action && action(e) !== false) e.preventDefault();
}

/** Listen on the document (once, however often it is called). */
export function installKeys() {
  if (installed) return;
  installed = true;
  document.addEventListener("keydown", onKeydown);
}
