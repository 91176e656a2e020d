// The RinServe playground: plain JS over the public API (GET /models, POST /generate, GET /jobs/{id}/events?preview=k,
// GET /jobs/{id}/images/0, DELETE /jobs/{id}). Events are read with fetch, not EventSource, so the API key header can be sent.
"use strict";

const $ = (id) => document.getElementById(id);
const keyStore = "rinserve.apiKey";
const fieldOf = { class: "class", model: "model", res: "model", steps: "steps", seed: "seed", guidance: "guidance", "X-Api-Key": "key" };
let models = [];
let running = null; // { id, abort }
let lastAnnounce = 0;

function headers(extra = {}) {
  const key = sessionStorage.getItem(keyStore);
  return key ? { ...extra, "X-Api-Key": key } : extra;
}

const api = (path, options = {}) => fetch(path, { ...options, headers: headers(options.headers) });

/** A problem-details answer (or any failed answer) in words, with when to retry for 429 and 503. */
async function describe(response) {
  let problem = {};
  try { problem = await response.json(); } catch { /* not JSON: the status line has to do */ }
  const title = problem.title || `The service answered ${response.status} ${response.statusText}`;
  let detail = problem.detail || "";
  const retry = response.headers.get("Retry-After");
  if ((response.status === 429 || response.status === 503) && retry) {
    detail += `${detail ? " " : ""}Try again in ${retry} s${response.status === 429 ? "" : " (the queue backend is unreachable)"}.`;
  }
  return { status: response.status, title, detail, parameter: problem.parameter };
}

function showError(error) {
  const box = $("error");
  box.replaceChildren();
  const strong = document.createElement("strong");
  strong.textContent = error.title;
  box.append(strong);
  if (error.detail) { box.append(document.createTextNode(error.detail)); }
  box.hidden = false;
  const field = error.parameter && $(fieldOf[error.parameter] || "");
  if (field) { field.setAttribute("aria-invalid", "true"); field.focus(); }
  if (error.status === 401 || error.status === 403) { askForKey(error.title); }
}

function clearError() {
  $("error").hidden = true;
  document.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

function announce(text, force = false) {
  // Screen readers hear state changes and about one update in two seconds, not every step.
  const now = Date.now();
  if (force || now - lastAnnounce > 2000) { $("status").textContent = text; lastAnnounce = now; }
}

function askForKey(reason) {
  $("key-reason").textContent = `${reason}: this service needs an API key.`;
  $("key-form").hidden = false;
  $("key").focus();
}

async function loadModels() {
  const response = await api("/models");
  if (!response.ok) {
    const error = await describe(response);
    $("models-status").textContent = "Models could not be loaded.";
    showError(error);
    return;
  }
  $("key-form").hidden = true;
  models = await response.json();
  showModels($("model"));
  $("models-status").textContent = models.length
    ? `${models.length} model${models.length > 1 ? "s" : ""} loaded, on ${models[0].executionProvider}.`
    : "No models are loaded.";
  modelChanged();
  $("generate-button").disabled = models.length === 0;
}

/** A model's resolution is shared when another model has it too; there, isDefault says which one a request naming only res gets. */
const sharesResolution = (model) => models.some((m) => m !== model && m.resolution === model.resolution);

/**
 * The model picker: one group per family, the default family first (the one whose models are the default where
 * resolutions are shared), a model that wins a shared resolution marked "default"; the first default model is selected.
 */
function showModels(select) {
  const wins = (family) => models.filter((m) => m.family === family && m.isDefault && sharesResolution(m)).length;
  const families = [...new Set(models.map((m) => m.family))].sort((a, b) => wins(b) - wins(a) || a.localeCompare(b));
  select.replaceChildren(...families.map((family) => {
    const group = document.createElement("optgroup");
    group.label = family;
    group.append(...models.filter((m) => m.family === family).map((m) => {
      const shared = sharesResolution(m);
      return new Option(`${m.name} (${m.resolution} px${shared && m.isDefault ? ", default" : ""})`, m.name);
    }));
    return group;
  }));
  const first = select.querySelector("option");
  if (first) { select.value = first.value; }
  select.disabled = models.length === 0;
  const shared = models.filter((m) => m.isDefault && sharesResolution(m));
  const hint = $("model-hint");
  hint.textContent = shared.length
    ? `Where models share a resolution, a request without a model gets the default: ${shared.map((m) => m.name).join(", ")}.`
    : "";
  hint.hidden = shared.length === 0;
}

/** Classes named like "ĳ (U+0133)": the service also reads the character alone or its U+ code. */
const characterNamed = (model) => model.classes.length > 0 && model.classes.every((c) => / \(U\+[0-9A-F]{4,6}\)$/.test(c.name));

function modelChanged() {
  const model = models.find((m) => m.name === $("model").value);
  if (!model) { return; }
  const input = $("class");
  $("class-options").replaceChildren(...model.classes.map((c) => new Option(String(c.id), c.name)));
  // A class name the new model has too stays; anything else becomes the model's first class.
  if (!model.classes.some((c) => c.name === input.value.trim())) { input.value = model.classes[0]?.name ?? ""; }
  input.disabled = false;
  $("class-hint").textContent = characterNamed(model)
    ? `${model.classes.length} classes: type a character (case matters), part of a name or a U+ code, or pick from the list. `
      + "A number is a class id: the character 1 is U+0031."
    : "Type or pick a class name, or its id.";
  $("steps").value = model.defaultSteps ?? 50;
  $("steps-hint").textContent = `More steps: slower, usually cleaner. This model's default: ${model.defaultSteps} steps of ${model.defaultSampler}.`;
  const guidance = $("guidance");
  guidance.value = model.defaultGuidance ?? 0;
  guidance.disabled = !model.supportsGuidance;
  $("guidance-hint").textContent = model.supportsGuidance
    ? `Classifier-free guidance weight; 0 = unguided; this model's default is ${model.defaultGuidance}.`
    : "This model was trained without a null class, so it is always unguided.";
}

async function generate(event) {
  event.preventDefault();
  if (running) { return; }
  clearError();
  const model = models.find((m) => m.name === $("model").value);
  // Numbers go as the text typed: the service validates them and says what is allowed.
  const body = { class: $("class").value.trim(), model: model?.name };
  const steps = $("steps").value.trim();
  const seed = $("seed").value.trim();
  const guidance = $("guidance").value.trim();
  if (steps) { body.steps = steps; }
  if (seed) { body.seed = seed; }
  if (model?.supportsGuidance && guidance) { body.guidance = guidance; }

  setRunning(true);
  announce("Sending the request…", true);
  let response;
  try {
    response = await api("/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", Prefer: "respond-async" },
      body: JSON.stringify(body),
    });
  } catch (e) {
    setRunning(false);
    showError({ title: "The service cannot be reached", detail: String(e.message || e) });
    announce("The request failed.", true);
    return;
  }
  if (!response.ok) {
    setRunning(false);
    showError(await describe(response));
    announce("The request was refused.", true);
    return;
  }
  const job = await response.json();
  // Seeds go up to 2^63-1, beyond what a JS number holds exactly: the X-Seed header keeps every digit.
  await watch(job, response.headers.get("X-Seed") || String(job.seed));
}

function setRunning(on, id = null) {
  $("generate-button").disabled = on;
  $("cancel-button").disabled = !on || !id;
  $("generate").setAttribute("aria-busy", String(on));
  if (!on) { running = null; }
}

async function watch(job, seed) {
  const run = $("run");
  run.dataset.progressEvents = "0";
  run.dataset.previews = "0";
  const abort = new AbortController();
  running = { id: job.id, abort };
  setRunning(true, job.id);
  $("preview-figure").hidden = true;
  const progress = $("progress");
  progress.max = job.steps;
  progress.value = 0;
  const every = Math.max(1, Math.ceil(job.steps / 10));
  let last = job;
  try {
    const response = await api(`/jobs/${job.id}/events?preview=${every}`, { signal: abort.signal, headers: { Accept: "text/event-stream" } });
    if (!response.ok) { throw await describe(response); }
    for await (const event of readEvents(response.body)) {
      last = JSON.parse(event.data);
      show(event.type, last);
    }
  } catch (e) {
    if (e.name === "AbortError") { return; }
    showError(e.title ? e : { title: "Lost the job's events", detail: String(e.message || e) });
  }
  if (last.status === "succeeded") {
    await showResult(last, seed);
  } else if (last.status === "failed") {
    showError({ title: "The job failed", detail: last.error || "" });
    announce("The job failed.", true);
  } else if (last.status === "canceled") {
    announce("Canceled.", true);
  }
  setRunning(false);
}

function show(type, job) {
  const run = $("run");
  const progress = $("progress");
  const { step, steps, etaSeconds } = job.progress;
  progress.max = steps;
  progress.value = step;
  progress.setAttribute("aria-valuetext", `step ${step} of ${steps}`);
  if (type === "queued") {
    announce(`Queued${job.queuePosition ? `, position ${job.queuePosition}` : ""}.`, true);
  } else if (type === "started" || type === "progress") {
    if (type === "progress") { run.dataset.progressEvents = String(Number(run.dataset.progressEvents) + 1); }
    const eta = etaSeconds == null ? "" : `, about ${Math.ceil(etaSeconds)} s left`;
    announce(`Step ${step} of ${steps}${eta}.`, type === "started");
  }
  if (job.preview) {
    run.dataset.previews = String(Number(run.dataset.previews) + 1);
    const img = $("preview");
    img.src = `data:image/png;base64,${job.preview.png}`;
    img.alt = `Preview of the image after step ${job.preview.step}`;
    $("preview-caption").textContent = `x̂0 after step ${job.preview.step}`;
    $("preview-figure").hidden = false;
  }
}

async function* readEvents(body) {
  // Server-Sent Events: "event:" and "data:" lines, an empty line ends each event.
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) { return; }
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (line === "") {
        if (data.length) { yield { type, data: data.join("\n") }; }
        type = "message";
        data = [];
      } else if (line.startsWith("event:")) {
        type = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    }
  }
}

async function showResult(job, seed) {
  const response = await api(job.images[0]);
  if (!response.ok) { showError(await describe(response)); return; }
  const url = URL.createObjectURL(await response.blob());
  const entry = { url, seed, model: job.model, className: job.className ?? String(job.class), steps: job.steps, guidance: job.guidance, format: job.format };
  display(entry);
  $("preview-figure").hidden = true;
  const seconds = job.startedAt && job.finishedAt ? ` in ${((Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000).toFixed(1)} s` : "";
  announce(`Done${seconds}: ${entry.className}, seed ${seed}.`, true);
  addToGallery(entry);
}

function display(entry) {
  const img = $("result-image");
  img.src = entry.url;
  img.alt = `Generated ${entry.className}, seed ${entry.seed}`;
  $("result-caption").textContent = `${entry.className} · seed ${entry.seed} · ${entry.model} · ${entry.steps} steps · guidance ${entry.guidance}`;
  const download = $("download");
  download.href = entry.url;
  download.download = `rinserve-${entry.model}-${entry.className}-${entry.seed}.${entry.format === "jpeg" ? "jpg" : entry.format}`.replace(/[^\w.-]+/g, "_");
  $("reuse-seed").dataset.seed = entry.seed;
  $("result").hidden = false;
}

function addToGallery(entry) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  const img = document.createElement("img");
  img.src = entry.url;
  img.alt = `${entry.className}, seed ${entry.seed}`;
  button.append(img);
  button.addEventListener("click", () => display(entry));
  item.append(button);
  const gallery = $("gallery");
  gallery.prepend(item);
  while (gallery.children.length > 24) { gallery.lastElementChild.remove(); }
  $("gallery-empty").hidden = true;
}

async function cancel() {
  if (!running) { return; }
  $("cancel-button").disabled = true;
  announce("Canceling…", true);
  const response = await api(`/jobs/${running.id}`, { method: "DELETE" });
  if (!response.ok) { showError(await describe(response)); }
}

$("generate").addEventListener("submit", generate);
$("model").addEventListener("change", modelChanged);
$("cancel-button").addEventListener("click", cancel);
$("clear-seed").addEventListener("click", () => { $("seed").value = ""; $("seed").focus(); });
$("reuse-seed").addEventListener("click", () => { $("seed").value = $("reuse-seed").dataset.seed || ""; $("seed").focus(); });
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(keyStore, $("key").value.trim());
  clearError();
  loadModels();
});
loadModels().catch((e) => showError({ title: "The service cannot be reached", detail: String(e.message || e) }));
