// The dashboard: an admin's (or moderator's) token, kept for this tab only (sessionStorage)
// and sent as a bearer token; then the live count, signatures per minute and per hour
// (uPlot, vendored), countries, milestones, the newest signers and the moderation queue.
// Counts, signers and milestones arrive over the page's websocket; the figures are read
// again after new signatures and every few seconds while the socket is down, the queue
// every few seconds (a held comment is pushed to nobody).

import { connect } from "./live.js";
import { el } from "./counter.js";

const KEY = "petitions.dashboard.token";
const QUEUE_EVERY = 3000;
const FIGURES_EVERY = 30000;
const FIGURES = `query Dashboard($slug: String!, $minutes: DateTime!, $hours: DateTime!) {
  petition(slug: $slug) { id title signatureCount signatureGoal
    countries(first: 250) { country count }
    perMinute: signaturesOverTime(interval: MINUTE, since: $minutes) { start count }
    perHour: signaturesOverTime(interval: HOUR, since: $hours) { start count }
    milestones { count reachedAt }
    signatures(first: 10) { edges { node { id name country createdAt } } } } }`;
const QUEUE = `query Queue($id: ID!) { moderationQueue(status: HELD, petitionId: $id, first: 100) {
  edges { node { id authorName body createdAt } } } }`;
const MODERATE = `mutation Moderate($input: ModerateCommentInput!) {
  moderateComment(input: $input) { errors { message } } }`;
const COUNT = `subscription Count($id: ID!) {
  signatureCount(petitionId: $id) { signatureCount signatureGoal } }`;
const ADDED = `subscription Added($id: ID!) {
  signatureAdded(petitionId: $id) { id name country createdAt } }`;
const MILESTONE = `subscription Milestone($id: ID!) { milestoneReached(petitionId: $id) { count reachedAt } }`;
const ACTIONS = [
  ["publish", "Publish", "PUBLISHED", "button"],
  ["spam", "Spam", "SPAM", "button danger"],
  ["hide", "Hide", "HIDDEN", "button secondary"],
];

const root = document.querySelector(".dashboard");
const slug = root.dataset.slug;
const find = (name) => root.querySelector(`[data-petition="${name}"]`);
const form = find("token-form");
const numbers = new Intl.NumberFormat("en-GB");
const regions = new Intl.DisplayNames(["en"], { type: "region" });
const when = new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "short" });
const hour = new Intl.DateTimeFormat("en-GB", { timeStyle: "short" });

let session = null; // {token, id, stops, timers}

class Refused extends Error {}

async function ask(token, query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors?.length) throw new Refused(body.errors[0].message);
  return body.data;
}

function floored(unit, back) {
  return new Date(Math.floor(Date.now() / unit) * unit - back * unit).toISOString();
}

// Figures

function setCount(count, goal) {
  find("count").textContent = String(count);
  find("goal-line").hidden = !goal;
  if (goal) find("goal").textContent = String(goal);
}

function signerItem({ id, name, country, createdAt }) {
  const signed = new Date(createdAt);
  const today = signed.toDateString() === new Date().toDateString();
  const details = [country && regions.of(country), (today ? hour : when).format(signed)].filter(Boolean);
  return el("li", { "data-id": id }, el("strong", {}, name), " ", el("span", { class: "hint" }, details.join(" · ")));
}

function addSigner(signer) {
  const list = find("signers");
  if (list.querySelector(`[data-id="${CSS.escape(signer.id)}"]`)) return;
  list.prepend(signerItem(signer));
  while (list.children.length > 10) list.lastElementChild.remove();
}

function showCountries(countries) {
  const top = countries[0]?.count || 1;
  find("countries-empty").hidden = countries.length > 0;
  find("countries").replaceChildren(
    ...countries.map(({ country, count }) =>
      el(
        "li",
        { "data-country": country, "data-count": String(count) },
        el("span", {}, `${regions.of(country) || country} (${country})`),
        el("strong", {}, numbers.format(count)),
        el("meter", { min: "0", max: String(top), value: String(count), "aria-hidden": "true" }),
      ),
    ),
  );
}

function showMilestones(milestones) {
  find("milestones").replaceChildren(
    ...milestones.map(({ count, reachedAt }) =>
      el(
        "li",
        { "data-count": String(count), class: reachedAt ? "reached" : null },
        `${numbers.format(count)} signatures: `,
        reachedAt ? `reached ${when.format(new Date(reachedAt))}` : "not yet",
      ),
    ),
  );
}

const charts = {};

function chart(name, buckets, label, format, space) {
  const box = root.querySelector(`[data-chart="${name}"]`);
  const data = [buckets.map((b) => Date.parse(b.start) / 1000), buckets.map((b) => b.count)];
  const width = Math.max(280, box.clientWidth);
  if (charts[name]) {
    charts[name].setData(data);
    if (Math.abs(charts[name].width - width) > 4) charts[name].setSize({ width, height: 220 });
    return;
  }
  const uPlot = window.uPlot;
  if (!uPlot) return;
  charts[name] = new uPlot(
    {
      width,
      height: 220,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(4, max)] } },
      axes: [
        { stroke: "#4b5157", grid: { stroke: "#eceef0" }, space, values: (_u, ticks) => ticks.map(format) },
        { stroke: "#4b5157", grid: { stroke: "#eceef0" } },
      ],
      series: [
        {},
        {
          label: "Signatures",
          stroke: "#0a7a3d",
          fill: "rgba(10, 122, 61, 0.35)",
          paths: uPlot.paths.bars({ size: [0.8, 24] }),
          points: { show: false },
        },
      ],
    },
    data,
    box,
  );
  const canvas = charts[name].root.querySelector("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  if (name === "minute") canvas.dataset.petition = "chart";
}

const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
const dayHour = (seconds) =>
  new Date(seconds * 1000).toLocaleString("en-GB", { weekday: "short", hour: "2-digit", minute: "2-digit" });

async function readFigures() {
  const data = await ask(session.token, FIGURES, {
    slug,
    minutes: floored(60e3, 59),
    hours: floored(3600e3, 47),
  });
  const petition = data.petition;
  if (!petition) throw new Refused("No petition here is visible to this token.");
  find("title").textContent = petition.title;
  if (!session.live.connected || !session.counted) setCount(petition.signatureCount, petition.signatureGoal);
  showCountries(petition.countries);
  showMilestones(petition.milestones);
  const perMinute = petition.perMinute.reduce((sum, b) => sum + b.count, 0);
  const perHour = petition.perHour.reduce((sum, b) => sum + b.count, 0);
  chart("minute", petition.perMinute, `Signatures per minute: ${perMinute} in the last 60 minutes`, clock, 50);
  chart("hour", petition.perHour, `Signatures per hour: ${perHour} in the last 48 hours`, dayHour, 90);
  const list = find("signers");
  list.replaceChildren();
  for (const { node } of petition.signatures.edges.slice().reverse()) addSigner(node);
  session.readAt = Date.now();
  return petition;
}

// The moderation queue: kept item by item, so that focus stays where it was.

function queueItem({ id, authorName, body, createdAt }) {
  const buttons = ACTIONS.map(([action, text, status, style]) => {
    const button = el("button", { type: "button", class: style, "data-action": action }, text);
    button.addEventListener("click", () => moderate(id, status, item));
    return button;
  });
  const item = el(
    "li",
    { "data-id": id },
    el("p", { class: "comment-meta" }, el("strong", {}, authorName), " ", el("time", { datetime: createdAt }, when.format(new Date(createdAt)))),
    el("p", {}, body),
    el("div", { class: "actions", role: "group", "aria-label": `Moderate the comment by ${authorName}` }, ...buttons),
  );
  return item;
}

function showQueue(comments) {
  const list = find("queue");
  const wanted = new Set(comments.map((comment) => comment.id));
  for (const item of [...list.children]) if (!wanted.has(item.dataset.id)) item.remove();
  for (const comment of comments)
    if (!list.querySelector(`[data-id="${CSS.escape(comment.id)}"]`)) list.append(queueItem(comment));
  find("queue-empty").hidden = comments.length > 0;
}

async function readQueue() {
  const data = await ask(session.token, QUEUE, { id: session.id });
  showQueue(data.moderationQueue.edges.map((edge) => edge.node));
}

async function moderate(id, status, item) {
  for (const button of item.querySelectorAll("button")) button.disabled = true;
  try {
    const { moderateComment } = await ask(session.token, MODERATE, { input: { id, status } });
    if (moderateComment.errors.length) throw new Refused(moderateComment.errors[0].message);
  } catch (error) {
    find("status").textContent = `Not done: ${error.message}`;
  }
  await readQueue().catch(() => {});
  for (const button of item.querySelectorAll("button")) button.disabled = false;
}

// Signing in and out

function setOpen(open) {
  form.hidden = open;
  find("panels").hidden = !open;
}

function close() {
  if (!session) return;
  session.stops.forEach((stop) => stop());
  session.timers.forEach(clearInterval);
  clearTimeout(session.soon);
  session = null;
}

async function open(token) {
  close();
  find("token-error").textContent = "";
  find("status").textContent = "";
  const live = connect();
  session = { token, live, stops: [], timers: [], counted: false };
  const mine = session;
  try {
    setOpen(true);
    const petition = await readFigures();
    session.id = petition.id;
    await readQueue();
  } catch (error) {
    if (session === mine) close();
    setOpen(false);
    sessionStorage.removeItem(KEY);
    find("token-error").textContent =
      error instanceof Refused ? `${error.message} Check the token and try again.` : "The service cannot be reached: try again.";
    form.querySelector("input").focus();
    return;
  }
  sessionStorage.setItem(KEY, token);
  const id = session.id;
  const soon = () => {
    clearTimeout(session?.soon);
    if (session) session.soon = setTimeout(() => session && readFigures().catch(() => {}), 1500);
  };
  session.stops.push(
    live.subscribe(COUNT, { id }, ({ signatureCount: update }) => {
      session.counted = true;
      setCount(update.signatureCount, update.signatureGoal);
    }),
    live.subscribe(ADDED, { id }, ({ signatureAdded }) => {
      addSigner(signatureAdded);
      soon();
    }),
    live.subscribe(MILESTONE, { id }, () => soon()),
  );
  session.timers.push(
    setInterval(() => {
      readQueue().catch(() => {});
      if (!live.connected || Date.now() - session.readAt > FIGURES_EVERY) readFigures().catch(() => {});
    }, QUEUE_EVERY),
  );
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = new FormData(form).get("token").toString().trim();
  if (token) open(token);
  else find("token-error").textContent = "Enter your token.";
});

find("forget").addEventListener("click", () => {
  close();
  sessionStorage.removeItem(KEY);
  form.reset();
  setOpen(false);
  form.querySelector("input").focus();
});

addEventListener("resize", () => {
  for (const [name, drawn] of Object.entries(charts)) {
    const width = Math.max(280, root.querySelector(`[data-chart="${name}"]`).clientWidth);
    drawn.setSize({ width, height: 220 });
  }
});

const kept = sessionStorage.getItem(KEY);
if (kept) open(kept);
