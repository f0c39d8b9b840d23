// The live counter: the count, the progress to the goal and the newest signers of one
// petition, kept live. The same core serves three places:
//   - server-rendered `[data-petition-live]` elements on the service's own pages (the
//     petition page and the embed), which it binds as they are;
//   - `<petition-counter petition="slug">`, which /widget.js brings to any site: the same
//     markup, built in an open shadow root and styled there, touching nothing around it.

import { connect } from "./live.js";

const SERVICE = new URL(import.meta.url).origin;
const MILESTONES = [100, 1000, 10000, 100000, 1000000];

const COUNTER = `query Counter($slug: String!, $n: Int) { petition(slug: $slug) {
  id slug title signatureCount signatureGoal
  signatures(first: $n) { edges { node { id name } } } } }`;
const COUNT = `subscription Count($id: ID!) {
  signatureCount(petitionId: $id) { signatureCount signatureGoal } }`;
const ADDED = `subscription Added($id: ID!) { signatureAdded(petitionId: $id) { id name } }`;

/** A new element: `el("li", {"data-id": id}, name)`. */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes))
    if (value != null) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** Keep `root`'s `[data-petition=count|goal|progress|signers]` live; returns a function that
 * stops it. `id` (the petition's global ID) saves a first read; `signers` is how many names
 * the list keeps (0: the list is not live, e.g. an older page of signers). */
export function bindCounter(root, { slug, id, signers = 5, live = connect(SERVICE), onPetition }) {
  const find = (name) => root.querySelector(`[data-petition="${name}"]`);
  const stops = [];
  let followed = false;
  let stopped = false;

  const setCount = (count, goal) => {
    const counter = find("count");
    if (counter) counter.textContent = String(count);
    if (goal && find("goal")) find("goal").textContent = String(goal);
    const progress = find("progress");
    if (progress) {
      const target = goal || MILESTONES.find((milestone) => count < milestone);
      const milestone = find("milestone");
      if (target) progress.max = target;
      progress.value = Math.min(count, progress.max);
      if (milestone && target && !goal) milestone.textContent = String(target);
    }
  };
  const addSigner = ({ id, name }, list = find("signers")) => {
    if (!list || list.querySelector(`[data-id="${CSS.escape(id)}"]`)) return;
    list.prepend(el("li", { "data-id": id }, name));
    while (list.children.length > signers) list.lastElementChild.remove();
  };
  const setSigners = (nodes) => {
    const list = find("signers");
    if (!list) return;
    list.replaceChildren();
    for (const node of nodes.slice().reverse()) addSigner(node, list);
  };
  const follow = (petitionId) => {
    if (followed || stopped) return;
    followed = true;
    stops.push(
      live.subscribe(COUNT, { id: petitionId }, ({ signatureCount: update }) =>
        setCount(update.signatureCount, update.signatureGoal),
      ),
    );
    if (signers) stops.push(live.subscribe(ADDED, { id: petitionId }, (data) => addSigner(data.signatureAdded)));
  };
  const read = (data, live) => {
    const petition = data.petition;
    onPetition?.(petition);
    if (!petition) return;
    // While the socket is up, the subscription owns the count: a read may be older.
    if (!live.connected || !followed) setCount(petition.signatureCount, petition.signatureGoal);
    if (signers) setSigners(petition.signatures.edges.map((edge) => edge.node));
    follow(petition.id);
  };

  const variables = { slug, n: signers };
  stops.push(live.poll(COUNTER, variables, read));
  if (id) follow(id);
  else live.query(COUNTER, variables).then((data) => read(data, live), () => {});
  return () => {
    stopped = true;
    stops.splice(0).forEach((stop) => stop());
  };
}

// The service's own pages: bind what the server rendered.
if (location.origin === SERVICE)
  for (const root of document.querySelectorAll("[data-petition-live]"))
    bindCounter(root, {
      slug: root.dataset.slug,
      id: root.dataset.petitionId,
      signers: Number(root.dataset.signersLive || 0),
    });

// <petition-counter petition="slug">, for any site.
const STYLE = `
:host { display: block; max-width: 22rem; font: 16px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: #1b1b1b; background: #fff; border: 1px solid #c8ccd0; border-radius: 8px; padding: 1rem 1.1rem; }
:host([hidden]) { display: none; }
a { color: #0b4f99; }
a:focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; background: #ffbf47; color: #0b0c0c; }
.title { margin: 0 0 .5rem; font-size: 1rem; font-weight: 600; }
.count { margin: 0; font-size: .95rem; }
[data-petition="count"] { font-size: 2.2rem; font-weight: 700; line-height: 1.15; font-variant-numeric: tabular-nums; margin-right: .2rem; }
progress { display: block; width: 100%; height: .7rem; margin: .6rem 0 .25rem; appearance: none; border: 0; border-radius: 99px; background: #e3e6e8; overflow: hidden; }
progress::-webkit-progress-bar { background: #e3e6e8; }
progress::-webkit-progress-value { background: #0a7a3d; border-radius: 99px; }
progress::-moz-progress-bar { background: #0a7a3d; border-radius: 99px; }
.goal { margin: 0 0 .6rem; font-size: .85rem; color: #4b5157; }
ol { list-style: none; margin: 0 0 .75rem; padding: 0; font-size: .9rem; }
li { padding: .2rem 0; border-top: 1px solid #eceef0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.sign { display: inline-block; padding: .45rem .9rem; border-radius: 4px; background: #0a7a3d; color: #fff; font-weight: 600; text-decoration: none; }
.sign:hover { background: #075c2e; }
.missing { margin: 0; color: #4b5157; }
`;
let sheet;

class PetitionCounter extends HTMLElement {
  static observedAttributes = ["petition"];

  connectedCallback() {
    this.stop?.();
    const slug = this.getAttribute("petition");
    const shadow = this.shadowRoot || this.attachShadow({ mode: "open" });
    if ("adoptedStyleSheets" in shadow) {
      if (!sheet) (sheet = new CSSStyleSheet()).replaceSync(STYLE);
      shadow.adoptedStyleSheets = [sheet];
      shadow.replaceChildren();
    } else shadow.replaceChildren(el("style", {}, STYLE));
    if (!slug) return;
    const page = `${SERVICE}/p/${encodeURIComponent(slug)}`;
    const link = el("a", { href: page, target: "_blank", rel: "noopener" }, slug);
    const progress = el("progress", { "data-petition": "progress", max: "100", value: "0" });
    const goalLine = el("p", { class: "goal" });
    shadow.append(
      el("p", { class: "title" }, link),
      el("p", { class: "count" }, el("span", { "data-petition": "count", "aria-live": "polite" }, "…"), " signatures"),
      progress,
      goalLine,
      el("ol", { "data-petition": "signers", "aria-label": "Newest signers" }),
      el("a", { class: "sign", href: `${page}#sign`, target: "_blank", rel: "noopener" }, "Sign the petition"),
    );
    this.stop = bindCounter(shadow, {
      slug,
      signers: 5,
      onPetition: (petition) => {
        if (!petition) {
          shadow.replaceChildren(el("p", { class: "missing" }, "This petition is not available."));
          return this.stop?.();
        }
        link.textContent = petition.title;
        const goal = petition.signatureGoal;
        const [label, name] = goal ? ["Goal", "goal"] : ["Next milestone", "milestone"];
        progress.setAttribute("aria-label", `Progress to the ${label.toLowerCase()}`);
        if (!goalLine.querySelector(`[data-petition="${name}"]`))
          goalLine.replaceChildren(`${label}: `, el("span", { "data-petition": name }));
      },
    });
  }

  disconnectedCallback() {
    this.stop?.();
    this.stop = null;
  }

  attributeChangedCallback(_name, before, after) {
    if (before !== null && before !== after && this.isConnected) this.connectedCallback();
  }
}

if (!customElements.get("petition-counter")) customElements.define("petition-counter", PetitionCounter);
