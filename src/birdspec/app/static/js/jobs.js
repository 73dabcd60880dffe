// jobs.js: following a background job (GET /api/jobs/ID) until it ends. Polling stops when the job is done
// or failed, when the caller's AbortSignal fires (its page was left: the request in flight is cancelled too),
// or after repeated failures to reach the server (waiting longer after each). A page that is shown again
// follows its job again with a fresh signal.
import { ApiError, get, isAbort } from "./api.js";

export const POLL_INTERVAL_MS = 300;
const MAX_FAILURES = 5;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;

/** Wait `ms`; rejects with the signal's AbortError as soon as it fires. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) { reject(signal.reason); return; }
    const onAbort = () => { clearTimeout(timer); reject(signal.reason); };
    const timer = setTimeout(() => { if (signal) signal.removeEventListener("abort", onAbort); resolve(); }, ms);
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
  });
}

// a network failure or a server error may pass; a refusal (an unknown job: 404) will not
const retryable = (err) => !(err instanceof ApiError) || err.status >= 500;

/**
 * Poll job `id` every `intervalMs`, calling `onUpdate(job)` (awaited) with each answer; resolves with the job
 * once its status is "done" or "failed". Rejects with an AbortError when `signal` fires, or with the error
 * once the server failed MAX_FAILURES times in a row.
 */
export async function pollJob(id, { signal, onUpdate = () => {}, intervalMs = POLL_INTERVAL_MS } = {}) {
  let failures = 0;
  for (;;) {
    let job;
    try {
      job = await get(`/jobs/${encodeURIComponent(id)}`, undefined, { signal });
      failures = 0;
    } catch (err) {
      if (isAbort(err) || !retryable(err)) throw err;
      failures += 1;
      if (failures >= MAX_FAILURES) {
        throw new Error(`the server did not answer about the job (${err.message}); is birdspec serve still running? Reload the page once it is`);
      }
      await sleep(Math.min(BACKOFF_FIRST_MS * 2 ** (failures - 1), BACKOFF_MAX_MS), signal);
      continue;
    }
    await onUpdate(job);
    if (signal) signal.throwIfAborted();
    if (job.status === "done" || job.status === "failed") return job;
    await sleep(intervalMs, signal);
  }
}
