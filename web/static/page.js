// The petition page's forms and comments: signing and commenting without leaving the page
// (the forms also work without JavaScript: they post to the page), and comments added or
// taken down live. The count and the signers are counter.js's.

import { connect } from "./live.js";
import { el } from "./counter.js";

const SIGN = `mutation Sign($input: SignPetitionInput!) { signPetition(input: $input) {
  needsConfirmation petition { signatureCount } errors { field message code } } }`;
const COMMENT = `mutation Comment($input: AddCommentInput!) { addComment(input: $input) {
  status comment { id authorName body createdAt } errors { field message code } } }`;
const ADDED = `subscription Added($id: ID!) { commentAdded(petitionId: $id) { id authorName body createdAt } }`;
const REMOVED = `subscription Removed($id: ID!) { commentRemoved(petitionId: $id) { id } }`;
const FAILED = "Something went wrong: please try again in a moment.";

const root = document.querySelector("[data-petition-live]");
const petitionId = root?.dataset.petitionId;

async function mutate(query, input) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query, variables: { input } }),
  });
  const body = await response.json();
  if (!body.data) throw new Error(body.errors?.[0]?.message || FAILED);
  return body.data;
}

/** Show what became of a form: `[data-petition=<attribute>]` with `data-outcome`, and each
 * error next to its field in `[data-error-for=<input name>]`. */
function show(form, attribute, outcome, message, errors = []) {
  for (const old of form.querySelectorAll("[data-error-for]")) old.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
  const general = [];
  let first = null;
  for (const { field, message } of errors) {
    const input = field && form.querySelector(`[name="${CSS.escape(field)}"]:not([type=hidden])`);
    if (!input || form.querySelector(`[data-error-for="${CSS.escape(field)}"]`)) {
      general.push(message);
      continue;
    }
    const id = `${form.dataset.petition}-${field}-error`;
    input.closest(".field").append(el("p", { class: "field-error", id, "data-error-for": field }, message));
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    first ??= input;
  }
  const good = outcome !== "refused";
  const result = el(
    "div",
    { "data-petition": attribute, "data-outcome": outcome, class: `result result-${good ? "good" : "bad"}` },
    el("p", {}, message),
    ...general.map((text) => el("p", {}, text)),
  );
  form.querySelector(".form-result").replaceChildren(result);
  (first || result).scrollIntoView?.({ block: "nearest" });
  first?.focus({ preventScroll: true });
}

function handle(form, submit) {
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await submit(form, new FormData(form));
    } catch {
      show(form, `${form.dataset.petition.replace("-form", "")}-result`, "refused", FAILED);
    } finally {
      button.disabled = false;
    }
  });
}

handle(document.querySelector('[data-petition="sign-form"]'), async (form, fields) => {
  const text = (name) => (fields.get(name) || "").toString();
  const { signPetition: answer } = await mutate(SIGN, {
    petitionId,
    firstName: text("firstName"),
    lastName: text("lastName"),
    email: text("email"),
    country: text("country") || null,
    comment: text("comment") || null,
    showName: fields.has("showName"),
  });
  if (answer.errors.length) {
    show(form, "sign-result", "refused", "Your signature was not counted: please correct what is marked below.", answer.errors);
    return;
  }
  form.reset();
  show(
    form,
    "sign-result",
    "signed",
    answer.needsConfirmation
      ? "Thank you! Check your email: follow the link we sent to count your signature."
      : "Thank you for signing! Your signature is counted.",
  );
});

handle(document.querySelector('[data-petition="comment-form"]'), async (form, fields) => {
  const input = { petitionId };
  for (const name of ["authorName", "email", "body"]) input[name] = (fields.get(name) || "").toString();
  const { addComment: answer } = await mutate(COMMENT, input);
  if (answer.errors.length) {
    show(form, "comment-result", "refused", "Your comment was not posted: please correct what is marked below.", answer.errors);
    return;
  }
  form.reset();
  if (answer.status === "PUBLISHED") {
    addComment(answer.comment);
    show(form, "comment-result", "published", "Thank you: your comment is published.");
  } else show(form, "comment-result", "held", "Thank you: your comment will appear once a moderator has read it.");
});

// Comments, live.
const comments = document.querySelector('[data-petition="comments"]');

function paragraphs(text) {
  return text
    .split(/\n\s*\n/)
    .filter((block) => block.trim())
    .map((block) => {
      const p = el("p");
      block.trim().split("\n").forEach((line, i) => p.append(...(i ? [el("br"), line] : [line])));
      return p;
    });
}

function addComment({ id, authorName, body, createdAt }) {
  if (!comments || comments.querySelector(`[data-id="${CSS.escape(id)}"]`)) return;
  const day = new Date(createdAt).toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" });
  comments.append(
    el(
      "li",
      { "data-id": id },
      el("p", { class: "comment-meta" }, el("strong", {}, authorName), " ", el("time", { datetime: createdAt }, day)),
      el("div", { class: "comment-body" }, ...paragraphs(body)),
    ),
  );
}

if (petitionId && comments) {
  const live = connect();
  live.subscribe(ADDED, { id: petitionId }, (data) => addComment(data.commentAdded));
  live.subscribe(REMOVED, { id: petitionId }, (data) =>
    comments.querySelector(`[data-id="${CSS.escape(data.commentRemoved.id)}"]`)?.remove(),
  );
}
