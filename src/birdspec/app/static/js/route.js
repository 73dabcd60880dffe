// route.js: the URL hash format of the app, "#/page?key=value" (e.g. "#/review?prediction=REF"):
// reading it, writing links to it, and recording the current page's parameters without a new history entry.
// main.js routes on it; pages use it for their links and to make a reload show the same thing.

export const PAGES = ["analyze", "review", "train", "runs"];
export const DEFAULT_PAGE = "analyze";

/** {name, params} of a hash; the old "#review" form reads as "#/review". */
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, "");
  const cut = raw.indexOf("?");
  const name = cut < 0 ? raw : raw.slice(0, cut);
  const params = Object.fromEntries(new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1)));
  return { name, params };
}

/** The link to a page: href("runs", {run: "runs/a"}) -> "#/runs?run=runs%2Fa". */
export function href(name, params = {}) {
  const kept = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  const query = new URLSearchParams(kept).toString();
  return `#/${name}${query ? "?" + query : ""}`;
}

/** Write `params` into the hash of page `name` if it is the page shown (no hashchange, no new history entry). */
export function replaceParams(name, params) {
  if (parseHash().name !== name) return;
  const target = href(name, params);
  if (location.hash !== target) history.replaceState(history.state, "", target);
}
