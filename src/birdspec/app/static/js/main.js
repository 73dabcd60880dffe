// main.js: start-up and routing. Reads the server's settings into the store, then shows one page per URL
// hash (#/analyze, #/review, #/train, #/runs, see route.js): the page shown before is unmounted (its
// listeners, requests and job polling end), the new one mounted and its keys handed to keys.js. Back,
// forward and reload show the page of the URL.
import * as analyze from "./analyze.js";
import { get } from "./api.js";
import { $, say } from "./dom.js";
import { installKeys, setBindings } from "./keys.js";
import * as review from "./review.js";
import { DEFAULT_PAGE, PAGES, href, parseHash } from "./route.js";
import * as runs from "./runs.js";
import { setSettings } from "./state.js";
import * as train from "./train.js";

const MODULES = { analyze, review, train, runs };
let current = null;  // {name, module, root}

function route() {
  let { name, params } = parseHash();
  if (!PAGES.includes(name)) { name = DEFAULT_PAGE; params = {}; }
  const canonical = href(name, params);
  if (location.hash !== canonical) history.replaceState(history.state, "", canonical);
  if (current && current.name === name) {
    if (current.module.update) current.module.update(params);
    return;
  }
  if (current) {
    setBindings(null);
    current.module.unmount();
    current.root.hidden = true;
  }
  const root = $("#page-" + name), module = MODULES[name];
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    const active = a.dataset.page === name;
    a.classList.toggle("active", active);
    if (active) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  root.hidden = false;
  current = { name, module, root };
  setBindings(module.keys, module.keyHelp);
  module.mount(root, params);
}

async function start() {
  installKeys();
  try {
    setSettings(await get("/config"));
  } catch (err) {
    say($("#app-msg"), `the server's settings could not be read (${err.message}); is birdspec serve running? Reload the page`);
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
