// state.js: the one store of what pages share, read and changed only through these functions:
// the server's settings (GET /api/config, set once at start and frozen) and the prediction opened last
// (Analyze sets it, Review starts from it). Anything else belongs to one page and stays in its module.

let settings = null;
let lastPrediction = null;

function deepFreeze(value) {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Keep the server's settings (a frozen copy): zoom levels, tile width, frequency ticks, upload limit, folders. */
export function setSettings(value) {
  settings = deepFreeze(structuredClone(value));
}

export const hasSettings = () => settings !== null;

/** The server's settings; throws when they were not read (the page then says to reload). */
export function getSettings() {
  if (settings === null) throw new Error("the server's settings could not be read; reload the page");
  return settings;
}

/** The ref of the prediction opened last (in Analyze), or null. */
export const getLastPrediction = () => lastPrediction;

export function setLastPrediction(ref) {
  lastPrediction = ref || null;
}
