/* The attention explorer page of keras_attention.viz.explore.
 *
 * Reads the JSON in #explorer-data (written by keras_attention/viz/page.py),
 * inflates each map's weights (8-bit square roots, deflated, base64) and
 * mask (one byte per cell), and draws the selected example / map / block /
 * head as token-to-token lines, a matrix with tokens on its axes, the
 * effective mask, one tile per head, a task panel and the check.
 * Nothing here decides what is masked: the masks and the check come from
 * Python (keras_attention.ops and keras_attention.viz.check).
 */
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
  const $ = (id) => document.getElementById(id);
  const LUT = new Float32Array(256).map((_, i) => (i / 255) * (i / 255));
  const AVG = -1;
  const state = { example: 0, map: 0, block: 0, head: 0, hover: null, step: 0, vitMode: "attention" };
  const RH = 18; // token row height (px)

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function shown(token) {
    if (token === " ") return "\u2423";
    return token.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  }

  async function inflate(b64) {
    const text = atob(b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // Colour map close to matplotlib's "Reds".
  const STOPS = [[255, 245, 240], [252, 187, 161], [251, 106, 74], [203, 24, 29], [103, 0, 13]];
  function colour(t) {
    t = Math.max(0, Math.min(1, t)) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(t));
    const f = t - i, a = STOPS[i], b = STOPS[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }
  const rgb = (c, alpha) => alpha === undefined
    ? `rgb(${c[0] | 0},${c[1] | 0},${c[2] | 0})` : `rgba(${c[0] | 0},${c[1] | 0},${c[2] | 0},${alpha})`;

  class MapData {
    constructor(raw, weights, mask) {
      Object.assign(this, raw);
      [this.N, this.H, this.Q, this.K] = raw.shape;
      this.bytes = weights;
      this.maskBytes = mask;
      this.cache = new Map();
    }
    matrix(block, head) {
      const key = block * 1000 + head;
      if (this.cache.has(key)) return this.cache.get(key);
      const size = this.Q * this.K, out = new Float32Array(size);
      const heads = head === AVG ? [...Array(this.H).keys()] : [head];
      for (const h of heads) {
        const base = (block * this.H + h) * size;
        for (let i = 0; i < size; i++) out[i] += LUT[this.bytes[base + i]];
      }
      if (head === AVG) for (let i = 0; i < size; i++) out[i] /= this.H;
      this.cache.set(key, out);
      return out;
    }
    allowed(q, k) { return this.maskBytes[q * this.K + k] === 1; }
  }

  const ex = () => DATA.examples[state.example];
  const map = () => ex().decoded[state.map];

  // ---------------------------------------------------------------- controls

  function fillSelect(select, options, value) {
    select.replaceChildren(...options.map(([v, label]) => el("option", { value: String(v), text: label })));
    select.value = String(value);
  }

  function buildControls() {
    const examples = DATA.examples.map((e, i) => [i, `${i + 1}: ${e.title.slice(0, 60)}`]);
    fillSelect($("example-select"), examples, state.example);
    $("example-label").hidden = DATA.examples.length < 2;
    fillSelect($("map-select"), ex().decoded.map((m, i) => [i, m.name]), state.map);
    const m = map();
    state.block = Math.min(state.block, m.N - 1);
    if (state.head !== AVG) state.head = Math.min(state.head, m.H - 1);
    fillSelect($("block-select"), [...Array(m.N).keys()].map((b) => [b, String(b + 1)]), state.block);
    const heads = [...Array(m.H).keys()].map((h) => [h, String(h + 1)]);
    if (m.H > 1) heads.push([AVG, "average"]);
    fillSelect($("head-select"), heads, state.head);
    $("map-note").textContent = m.note ? `mask: ${m.note}` : "";
  }

  // ----------------------------------------------------------------- matrix

  const geometry = {};

  function layoutMatrix(m, canvas) {
    const ctx = canvas.getContext("2d");
    const cell = Math.max(2, Math.min(26, Math.floor(520 / Math.max(m.Q, m.K))));
    const font = Math.min(12, cell - 1);
    const every = Math.max(1, Math.ceil(10 / cell)); // a label at least every 10 px
    ctx.font = `${Math.max(font, 9)}px DejaVu Sans Mono, monospace`;
    const width = (labels) => Math.min(110, Math.max(...labels.map((t) => ctx.measureText(shown(t)).width)) + 6);
    return { cell, font: Math.max(font, 9), every, left: width(m.queries), top: width(m.keys) };
  }

  function drawLabels(ctx, m, g) {
    ctx.fillStyle = "#333";
    ctx.font = `${g.font}px DejaVu Sans Mono, monospace`;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    const clip = (t, w) => { let s = shown(t); while (s.length > 1 && ctx.measureText(s).width > w - 6) s = s.slice(0, -1); return s; };
    for (let q = 0; q < m.Q; q += g.every) ctx.fillText(clip(m.queries[q], g.left), g.left - 4, g.top + (q + 0.5) * g.cell);
    ctx.save();
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    for (let k = 0; k < m.K; k += g.every) ctx.fillText(clip(m.keys[k], g.top), -g.top + 4, g.left + (k + 0.5) * g.cell);
    ctx.restore();
  }

  function drawMatrix() {
    const m = map(), W = m.matrix(state.block, state.head);
    const canvas = $("matrix"), g = layoutMatrix(m, canvas);
    Object.assign(geometry, g);
    canvas.width = g.left + m.K * g.cell + 2;
    canvas.height = g.top + m.Q * g.cell + 2;
    const overlay = $("matrix-overlay");
    overlay.width = canvas.width; overlay.height = canvas.height;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    let vmax = 0;
    for (const w of W) vmax = Math.max(vmax, w);
    vmax = vmax || 1;
    // One pixel per cell, scaled up without smoothing: fast for 256 x 256.
    const cells = cellImage(m, W, (w, allowed) => !allowed && w === 0 ? [228, 228, 228] : colour(w / vmax));
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cells, g.left, g.top, m.K * g.cell, m.Q * g.cell);
    let leaks = 0;
    for (let q = 0; q < m.Q; q++) for (let k = 0; k < m.K; k++) if (!m.allowed(q, k) && W[q * m.K + k] > 0) leaks++;
    // Masked keys that got weight: outlined, so a leak is seen at once.
    ctx.strokeStyle = "#00a0ff"; ctx.lineWidth = Math.max(1, g.cell / 6);
    for (let q = 0; q < m.Q; q++) for (let k = 0; k < m.K; k++)
      if (!m.allowed(q, k) && W[q * m.K + k] > 0)
        ctx.strokeRect(g.left + k * g.cell + 0.5, g.top + q * g.cell + 0.5, g.cell - 1, g.cell - 1);
    drawLabels(ctx, m, g);
    canvas.dataset.leaks = String(leaks);
    canvas.dataset.view = `${state.example}/${m.key}/${state.block}/${state.head}`;
    const label = state.head === AVG ? "average over heads" : `head ${state.head + 1}`;
    $("scale").textContent = `(block ${state.block + 1}, ${label}; colour 0 \u2013 ${vmax.toFixed(3)})`;
    drawMask(m, W);
  }

  // A canvas of K x Q pixels, pixel (k, q) coloured by paint(weight, allowed).
  function cellImage(m, W, paint) {
    const canvas = document.createElement("canvas");
    canvas.width = m.K; canvas.height = m.Q;
    const ctx = canvas.getContext("2d"), image = ctx.createImageData(m.K, m.Q);
    for (let i = 0; i < m.Q * m.K; i++) {
      const c = paint(W[i], m.maskBytes[i] === 1);
      image.data[4 * i] = c[0]; image.data[4 * i + 1] = c[1]; image.data[4 * i + 2] = c[2]; image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    return canvas;
  }

  function drawMask(m, W) {
    const canvas = $("mask"), cell = Math.max(1, Math.min(10, Math.floor(260 / Math.max(m.Q, m.K))));
    canvas.width = m.K * cell; canvas.height = m.Q * cell;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cellImage(m, W, (w, allowed) => allowed ? [255, 255, 255] : w > 0 ? [227, 26, 28] : [158, 158, 158]),
      0, 0, canvas.width, canvas.height);
    canvas.style.border = "1px solid #999";
  }

  function drawOverlay() {
    const m = map(), g = geometry, canvas = $("matrix-overlay"), ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const h = state.hover;
    if (!h) return;
    ctx.strokeStyle = "#2166ac"; ctx.lineWidth = 2;
    if (h.role === "q" || h.role === "cell")
      ctx.strokeRect(g.left, g.top + h.q * g.cell, m.K * g.cell, g.cell);
    if (h.role === "k" || h.role === "cell")
      ctx.strokeRect(g.left + h.k * g.cell, g.top, g.cell, m.Q * g.cell);
  }

  function onMatrixMove(event) {
    const m = map(), g = geometry, rect = $("matrix").getBoundingClientRect();
    const k = Math.floor((event.clientX - rect.left - g.left) / g.cell);
    const q = Math.floor((event.clientY - rect.top - g.top) / g.cell);
    if (q < 0 || k < 0 || q >= m.Q || k >= m.K) { setHover(null); return; }
    setHover({ role: "cell", q, k });
  }

  // ------------------------------------------------------------------ lines

  function tokenSpan(token, role, index, isPad) {
    return el("div", {
      class: "tok" + (isPad ? " pad" : ""), text: shown(token), title: token,
      dataset: { role, index: String(index) },
      onmouseenter: () => setHover(role === "q" ? { role, q: index } : { role, k: index }),
      onmouseleave: () => setHover(null),
    });
  }

  function drawTokens() {
    const m = map();
    $("query-tokens").replaceChildren(...m.queries.map((t, i) => tokenSpan(t, "q", i, t === "<pad>")));
    $("key-tokens").replaceChildren(...m.keys.map((t, i) => tokenSpan(t, "k", i, t === "<pad>")));
  }

  function drawLines() {
    const m = map(), W = m.matrix(state.block, state.head), canvas = $("lines-canvas");
    const width = 150, height = Math.max(m.Q, m.K) * RH;
    canvas.width = width; canvas.height = height;
    canvas.style.width = width + "px"; canvas.style.height = height + "px";
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const h = state.hover;
    let vmax = 0;
    for (const w of W) vmax = Math.max(vmax, w);
    vmax = vmax || 1;
    const focus = (q, k) => !h || h.role === "cell" ? true : h.role === "q" ? q === h.q : k === h.k;
    // Lines binned by weight, one path per bin: a few strokes even for 256 x 256 pairs.
    const bins = Array.from({ length: 10 }, () => new Path2D());
    for (let q = 0; q < m.Q; q++) {
      for (let k = 0; k < m.K; k++) {
        const w = W[q * m.K + k] / vmax;
        if (w < 0.02 || (h && !focus(q, k))) continue;
        const path = bins[Math.min(9, Math.floor(w * 10))];
        path.moveTo(0, (q + 0.5) * RH);
        path.bezierCurveTo(width / 2, (q + 0.5) * RH, width / 2, (k + 0.5) * RH, width, (k + 0.5) * RH);
      }
    }
    ctx.lineWidth = 1.6;
    bins.forEach((path, i) => {
      ctx.strokeStyle = rgb([203, 24, 29], Math.min(1, ((i + 0.5) / 10) * (h ? 1 : 0.8)));
      ctx.stroke(path);
    });
  }

  function colourTokens() {
    const m = map(), W = m.matrix(state.block, state.head), h = state.hover;
    const qs = $("query-tokens").children, ks = $("key-tokens").children;
    for (const span of [...qs, ...ks]) { span.style.background = ""; span.classList.remove("hovered"); delete span.dataset.w; }
    if (!h) return;
    const paint = (span, w, max) => { span.style.background = rgb(colour(w / (max || 1)), 0.85); span.dataset.w = w.toFixed(3); };
    if (h.role === "q" || h.role === "cell") {
      qs[h.q].classList.add("hovered");
      let max = 0;
      for (let k = 0; k < m.K; k++) max = Math.max(max, W[h.q * m.K + k]);
      for (let k = 0; k < m.K; k++) paint(ks[k], W[h.q * m.K + k], max);
    }
    if (h.role === "k" || h.role === "cell") {
      ks[h.k].classList.add("hovered");
      if (h.role === "k") {
        let max = 0;
        for (let q = 0; q < m.Q; q++) max = Math.max(max, W[q * m.K + h.k]);
        for (let q = 0; q < m.Q; q++) paint(qs[q], W[q * m.K + h.k], max);
      }
    }
  }

  function describeHover() {
    const m = map(), W = m.matrix(state.block, state.head), h = state.hover, tip = $("tooltip");
    const predicted = ex().extras.predicted;
    const what = (q) => predicted && m.key !== "encoder" && predicted[m.query_positions[q]]
      ? ` (predicts ${JSON.stringify(predicted[m.query_positions[q]])})` : "";
    if (!h) { tip.textContent = "\u00a0"; return; }
    if (h.role === "cell") {
      const w = W[h.q * m.K + h.k];
      tip.textContent = `query ${h.q} ${JSON.stringify(m.queries[h.q])}${what(h.q)} \u2192 key ${h.k} ` +
        `${JSON.stringify(m.keys[h.k])}: ${w.toFixed(3)}${m.allowed(h.q, h.k) ? "" : " (masked)"}`;
    } else if (h.role === "q") {
      let best = 0;
      for (let k = 1; k < m.K; k++) if (W[h.q * m.K + k] > W[h.q * m.K + best]) best = k;
      tip.textContent = `query ${h.q} ${JSON.stringify(m.queries[h.q])}${what(h.q)} attends most to ` +
        `${JSON.stringify(m.keys[best])} (${W[h.q * m.K + best].toFixed(3)})`;
    } else {
      let total = 0;
      for (let q = 0; q < m.Q; q++) total += W[q * m.K + h.k];
      tip.textContent = `key ${h.k} ${JSON.stringify(m.keys[h.k])} gets ${total.toFixed(3)} in all from ${m.Q} queries`;
    }
  }

  function setHover(hover) {
    state.hover = hover;
    document.body.dataset.hover = hover ? `${hover.role}:${hover.q ?? ""}:${hover.k ?? ""}` : "";
    drawOverlay();
    drawLines();
    colourTokens();
    describeHover();
  }

  // ------------------------------------------------------------ head tiles

  function tileCanvas(m, block, head) {
    const W = m.matrix(block, head);
    let vmax = 0;
    for (const w of W) vmax = Math.max(vmax, w);
    return cellImage(m, W, (w) => colour(w / (vmax || 1)));
  }

  function drawHeads() {
    const m = map(), heads = [...Array(m.H).keys()];
    if (m.H > 1) heads.push(AVG);
    $("heads").replaceChildren(...heads.map((h) => el("div", {
      class: "head-tile" + (h === state.head ? " selected" : ""),
      onclick: () => select({ head: h }),
    }, tileCanvas(m, state.block, h), h === AVG ? "average" : `head ${h + 1}`)));
  }

  // ------------------------------------------------------------ task panels

  function predictionList(top) {
    const best = top.length ? top[0][1] : 1;
    return el("div", { class: "pred" }, ...top.map(([label, p], i) => el("div", {},
      el("span", { class: "bar", style: `width:${Math.round(60 * p / (best || 1))}px` }),
      i === 0 ? el("b", { text: label }) : label, ` ${p.toFixed(3)}`)));
  }

  function drawTaskPanel() {
    const panel = $("task-panel"), e = ex(), x = e.extras;
    panel.replaceChildren();
    if (DATA.task === "translation") {
      panel.append(el("div", {}, el("b", { text: "source: " }), x.source),
        el("div", {}, el("b", { text: "greedy translation: " }), x.output),
        el("p", { class: "hint", text: "Decoder rows are the decoder inputs (<bos> and the output so far), teacher-forced; hovering one shows the token it predicts." }));
    } else if (DATA.task === "language_model") {
      panel.append(el("div", {}, el("b", { text: "prompt: " }), x.prompt),
        el("div", {}, el("b", { text: "generated: " }), x.output));
      drawSteps(panel);
    } else if (DATA.task === "vision") {
      drawVision(panel);
    } else if (DATA.task === "bert") {
      if (x.masks.length) {
        panel.append(el("div", { class: "panel-row" }, ...x.masks.map((p) => el("div", {},
          el("b", { text: `<mask> at position ${p.position}` }), predictionList(p.top)))));
      } else {
        panel.append(el("p", { class: "hint", text: "No <mask> token in the input (or no MLM head): attention only." }));
      }
    }
  }

  function drawSteps(panel) {
    const steps = ex().decoded.find((m) => m.key === "steps");
    if (!steps) return;
    state.step = Math.min(state.step, steps.Q - 1);
    const range = el("input", { type: "range", id: "step-range", min: "0", max: String(steps.Q - 1), value: String(state.step) });
    const text = el("div", { id: "steps-text" });
    const caption = el("div", { id: "steps-caption", class: "hint" });
    const render = () => {
      const s = state.step, position = steps.query_positions[s];
      const W = steps.matrix(state.block, state.head);
      let max = 0;
      for (let k = 0; k < steps.K; k++) max = Math.max(max, W[s * steps.K + k]);
      text.replaceChildren(...steps.keys.map((t, k) => {
        const allowed = steps.allowed(s, k), w = W[s * steps.K + k];
        const span = el("span", { class: "tok" + (allowed ? "" : " empty") + (k === position ? " current" : ""), text: shown(t),
          title: allowed ? `weight ${w.toFixed(3)}` : "empty cache slot (masked)" });
        if (allowed) { span.style.background = rgb(colour(w / (max || 1)), 0.85); span.dataset.w = w.toFixed(3); }
        return span;
      }));
      const next = ex().extras.predicted[position];
      caption.textContent = `step ${s + 1} of ${steps.Q}: token ${JSON.stringify(steps.queries[s])} at position ${position} ` +
        `attends over ${position + 1} filled cache slots of ${steps.K}` + (next ? ` and predicts ${JSON.stringify(next)}` : "") +
        ". Rows from the key/value cache run (prompt in one chunk, then one token per step); they equal the causal rows of the full pass.";
    };
    range.addEventListener("input", () => { state.step = Number(range.value); render(); });
    panel.append(el("h2", { text: "step by step, from the key/value cache" }), range, caption, text);
    render();
  }

  function drawVision(panel) {
    const x = ex().extras, m = ex().decoded[0], [gh, gw] = x.grid, P = gh * gw, S = 224;
    const mode = el("select", { id: "vit-mode" });
    fillSelect(mode, [["attention", "class token \u2192 patches"], ["rollout", "attention rollout"]], state.vitMode);
    mode.addEventListener("change", () => { state.vitMode = mode.value; paint(); });
    const canvas = el("canvas", { id: "vit-image", width: String(S), height: String(S) });
    const caption = el("div", { class: "hint", id: "vit-caption" });
    const image = new Image();
    const paint = () => {
      const ctx = canvas.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.clearRect(0, 0, S, S);
      if (image.complete) ctx.drawImage(image, 0, 0, S, S);
      let values;
      if (state.vitMode === "rollout") {
        values = x.rollout[state.block];
        caption.textContent = `rollout through blocks 1\u2013${state.block + 1} (heads averaged, identity added, rows renormalised, multiplied over blocks)`;
      } else {
        const W = m.matrix(state.block, state.head);
        values = Array.from({ length: P }, (_, p) => W[p + 1]);
        caption.textContent = `class-token attention over the patches, block ${state.block + 1}, ` +
          (state.head === AVG ? "average over heads" : `head ${state.head + 1}`) + ` (class token itself: ${W[0].toFixed(3)})`;
      }
      const vmax = Math.max(...values) || 1;
      for (let p = 0; p < P; p++) {
        const c = colour(values[p] / vmax);
        ctx.fillStyle = rgb(c, 0.08 + 0.5 * values[p] / vmax);
        ctx.fillRect((p % gw) * S / gw, Math.floor(p / gw) * S / gh, S / gw, S / gh);
      }
      ctx.strokeStyle = "rgba(255,255,255,0.35)";
      for (let r = 1; r < gh; r++) { ctx.beginPath(); ctx.moveTo(0, r * S / gh); ctx.lineTo(S, r * S / gh); ctx.stroke(); }
      for (let c = 1; c < gw; c++) { ctx.beginPath(); ctx.moveTo(c * S / gw, 0); ctx.lineTo(c * S / gw, S); ctx.stroke(); }
      canvas.dataset.view = `${state.vitMode}/${state.block}/${state.head}`;
    };
    image.onload = paint;
    image.src = "data:image/png;base64," + x.image;
    panel.append(el("div", { class: "panel-row" },
      el("div", {}, el("h2", { text: "image" }), mode, el("br"), canvas, caption),
      el("div", {}, el("h2", { text: "prediction" }), predictionList(x.top)),
      el("div", {}, el("h2", { text: "mean attention distance (pixels)" }), distanceChart(x.distances))));
    paint();
  }

  function distanceChart(distances) {
    const N = distances.length, H = distances[0].length, width = 260, height = 180, pad = 30;
    const ymax = Math.max(1, ...distances.flat()) * 1.1;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("id", "distance-chart");
    svg.setAttribute("width", width); svg.setAttribute("height", height);
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      svg.append(node); return node;
    };
    const X = (b) => pad + (N === 1 ? 0.5 : b / (N - 1)) * (width - 2 * pad);
    const Y = (d) => height - pad - (d / ymax) * (height - 2 * pad);
    add("line", { x1: pad, y1: height - pad, x2: width - pad / 2, y2: height - pad, stroke: "#999" });
    add("line", { x1: pad, y1: pad / 2, x2: pad, y2: height - pad, stroke: "#999" });
    add("text", { x: width / 2, y: height - 6, "text-anchor": "middle" }, "block");
    add("text", { x: 4, y: pad / 2 + 4 }, `${ymax.toFixed(0)}`);
    add("text", { x: 4, y: height - pad }, "0");
    for (let b = 0; b < N; b++) {
      add("text", { x: X(b), y: height - pad + 12, "text-anchor": "middle" }, String(b + 1));
      for (let h = 0; h < H; h++) {
        const on = b === state.block && (h === state.head || state.head === AVG);
        const dot = add("circle", { cx: X(b), cy: Y(distances[b][h]), r: on ? 5 : 3.5, fill: on ? "#b2182b" : "#ef8a62", opacity: 0.85, style: "cursor:pointer" });
        dot.addEventListener("click", () => select({ block: b, head: h }));
        const title = document.createElementNS(ns, "title");
        title.textContent = `block ${b + 1}, head ${h + 1}: ${distances[b][h].toFixed(1)} px`;
        dot.append(title);
      }
    }
    return svg;
  }

  // ------------------------------------------------------------------ check

  function drawCheck() {
    const report = DATA.report, status = $("check-status");
    status.textContent = report.lines[0];
    status.className = report.ok ? "ok" : "fail";
    $("check-lines").textContent = report.lines.slice(1).join("\n");
    const items = [];
    ex().decoded.forEach((m, mi) => {
      for (const [block, head, q, k, kind] of m.issues) {
        const text = kind === "row sum"
          ? `${m.name}, block ${block + 1} head ${head + 1}: row ${q} ${JSON.stringify(m.queries[q])} does not sum to ${m.maskBytes.subarray(q * m.K, (q + 1) * m.K).some((v) => v) ? 1 : 0}`
          : `${m.name}, block ${block + 1} head ${head + 1}: query ${q} ${JSON.stringify(m.queries[q])} \u2192 key ${k} ${JSON.stringify(m.keys[k])} (${kind})`;
        items.push(el("li", { class: "issue", text, onclick: () => {
          select({ map: mi, block, head });
          setHover(k >= 0 ? { role: "cell", q, k } : { role: "q", q });
        } }));
      }
    });
    $("check-issues").replaceChildren(...items);
  }

  // ---------------------------------------------------------------- wiring

  function select(change) {
    if ("example" in change && change.example !== state.example) { state.map = 0; state.step = 0; }
    Object.assign(state, change);
    state.hover = null;
    render();
  }

  function render() {
    buildControls();
    const e = ex();
    $("example-title").textContent = e.title;
    drawTokens();
    drawMatrix();
    drawLines();
    colourTokens();
    describeHover();
    drawOverlay();
    drawHeads();
    drawTaskPanel();
    drawCheck();
    document.body.dataset.view = `${state.example}/${map().key}/${state.block}/${state.head}`;
  }

  async function main() {
    const started = performance.now();
    const info = DATA.info;
    $("title").textContent = `Attention explorer: ${DATA.model_name}`;
    $("subtitle").textContent = `${DATA.task.replace("_", " ")} \u00b7 ${DATA.family} \u00b7 ${info.blocks} blocks \u00d7 ` +
      `${info.heads} heads \u00b7 ${info.parameters.toLocaleString("en")} parameters`;
    for (const e of DATA.examples) {
      e.decoded = [];
      for (const raw of e.maps) e.decoded.push(new MapData(raw, await inflate(raw.weights), await inflate(raw.mask)));
    }
    $("example-select").addEventListener("change", (ev) => select({ example: Number(ev.target.value) }));
    $("map-select").addEventListener("change", (ev) => select({ map: Number(ev.target.value) }));
    $("block-select").addEventListener("change", (ev) => select({ block: Number(ev.target.value) }));
    $("head-select").addEventListener("change", (ev) => select({ head: Number(ev.target.value) }));
    $("matrix").addEventListener("mousemove", onMatrixMove);
    $("matrix").addEventListener("mouseleave", () => setHover(null));
    $("loading").hidden = true;
    $("app").hidden = false;
    render();
    document.body.dataset.loadMs = String(Math.round(performance.now() - started));
    document.body.dataset.ready = "1";
  }

  window.explorer = { state, select, setHover, data: DATA };
  main().catch((error) => {
    $("loading").replaceChildren(el("span", { id: "error", text: `The page could not be drawn: ${error}` }));
    console.error(error);
  });
})();
