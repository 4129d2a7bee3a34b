"""The page's own script (`PAGE_HEAD`, Blocks.launch's head): keyboard shortcuts that leave focus where it was, a
dropdown that Tab leaves closed and that keeps focus after a pick, names for the radio and checkbox groups, the status
line as a live region, and the correction controls (text, rating, tags, marks, answer) kept in the browser on every
keystroke or click.

Each part is a piece of plain JavaScript run once when the page loads; they share no state but the names below.
"""

from kard.ui.curating import MAX_MARKED

SHORTCUTS_JS = """
let kardFocusWatch = null;
function kardKeepFocus(control) {
  // A control the app disables while it answers (the editor) drops focus to the page: give it back once enabled.
  if (kardFocusWatch) kardFocusWatch.disconnect();
  if (!control || control === document.body || !("disabled" in control)) return;
  let lost = false;
  kardFocusWatch = new MutationObserver(() => {
    const here = [control, document.body, null].includes(document.activeElement);
    if (control.disabled) { lost = lost || here; return; }
    if (lost && here) control.focus({preventScroll: true});
    if (lost) kardFocusWatch.disconnect();
  });
  kardFocusWatch.observe(control, {attributes: true, attributeFilter: ["disabled"]});
}
document.addEventListener("keydown", (event) => {
  const mod = event.ctrlKey || event.metaKey, key = event.key.toLowerCase();
  const id = mod && key === "s" ? "kard-save" : mod && event.key === "Enter" ? "kard-ask"
    : event.altKey && key === "n" ? "kard-next" : null;
  const button = id && document.getElementById(id);
  if (!button) return;
  event.preventDefault();
  const from = document.activeElement;
  button.click();
  kardKeepFocus(from);
});
"""
"""Ctrl+S save, Ctrl+Enter ask, Alt+N next question; focus stays on the control it was on (kardKeepFocus)."""

DROPDOWN_JS = """
let kardPicking = null, kardQuiet = null, kardAsleep = null, kardOpening = null;
const kardIsCombo = (el) => !!(el && el.matches && el.matches("input[role=combobox]"));
const KARD_NOT_EDITING = ["Tab", "Escape", "Shift", "Control", "Alt", "Meta"];
function kardFocusQuietly(box) {
  // focus without Gradio's focus handler, which would open the list again; its text selected, for typing over
  kardQuiet = box;
  try { box.focus({preventScroll: true}); } finally { kardQuiet = null; }
  if (document.activeElement !== box) return;
  kardAsleep = box;
  box.select();
}
function kardWake(box) {
  // Gradio did not see that quiet focus: until told, it shows no list and puts back any text typed in the box.
  // Its focus handler lists every option and takes typed text from now on, as a click on the box the first time.
  kardAsleep = null;
  box.dispatchEvent(new FocusEvent("focus"));
}
window.addEventListener("focus", (event) => {
  if (event.target === kardQuiet) event.stopImmediatePropagation();
}, true);
window.addEventListener("keydown", (event) => {
  if (!kardIsCombo(event.target)) return;
  const chord = event.ctrlKey || event.metaKey || event.altKey;
  if (event.target === kardAsleep && !chord && !KARD_NOT_EDITING.includes(event.key)) kardWake(event.target);
  // Gradio's key handler reopens the list after Tab has moved focus on, leaving it over the next controls
  if (event.key === "Tab") {
    event.stopPropagation();
    // the open list scrolls, and Chrome makes a scrolling box a Tab stop of its own: Tab would land on it, then on
    // the page once it closes; out of the order, Tab goes on to the next field (Shift+Tab to the one before)
    const block = event.target.closest(".block") || event.target.parentElement;
    block.querySelectorAll("[role=listbox]").forEach((list) => { list.tabIndex = -1; });
    // and close it now, as Escape does (focus moving on does not close it once Gradio's handler is skipped)
    event.target.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape", bubbles: true}));
  }
  kardPicking = event.key === "Enter" ? event.target : null;
}, true);
window.addEventListener("beforeinput", (event) => {
  // text that comes without a key of its own (paste, dictation) after a pick
  if (event.target === kardAsleep) kardWake(event.target);
}, true);
const kardListShown = (box) => box === document.activeElement && box.getAttribute("aria-expanded") === "true";
window.addEventListener("click", (event) => {
  // a click or tap that opens a dropdown's list selects its text, to type over; one that has focus but no list
  // (after a pick or Escape) lists the options again
  const box = event.target;
  if (box !== kardOpening) return;
  kardOpening = null;
  if (box === document.activeElement && !kardListShown(box)) kardWake(box);
  // after the browser has placed the caret: a press on selected text places it once the click is over
  setTimeout(() => { if (box === document.activeElement) box.select(); }, 0);
}, true);
window.addEventListener("mousedown", (event) => {
  kardOpening = kardIsCombo(event.target) && !kardListShown(event.target) ? event.target : null;
  const option = event.target.closest && event.target.closest("[role=option]");
  const block = option && option.closest(".block");
  const box = block && block.querySelector("input[role=combobox]");
  if (box) kardPicking = box;
}, true);
window.addEventListener("focusout", (event) => {
  // a pick blurs the dropdown (Gradio), dropping focus to the page: it goes back to the dropdown, closed
  const box = event.target;
  if (box === kardAsleep) kardAsleep = null;
  if (box !== kardPicking || event.relatedTarget) return;
  kardPicking = null;
  setTimeout(() => {
    if (box.isConnected && [document.body, null].includes(document.activeElement)) kardFocusQuietly(box);
  }, 0);
}, true);
"""
"""Dropdowns for the keyboard: Tab and Shift+Tab close the list and move on to the next (or previous) field in one
press, never to the list itself; after a pick (Enter or a click) focus
stays on the dropdown, its list closed and its text selected, and a click, a tap or a key there lists the options
again, as on a dropdown first focused (kardWake); a click or tap that opens the list selects the text, to type over."""

GROUP_NAMES_JS = """
let kardGroupCount = 0, kardNaming = false;
function kardNameGroups() {
  // Gradio draws a radio or checkbox group as a <fieldset> with its label in a <span>: no accessible name
  kardNaming = false;
  document.querySelectorAll("fieldset").forEach((group) => {
    const label = group.querySelector("[data-testid=block-info]");
    if (!label) return;
    if (!label.id) label.id = (group.id || "kard-group-" + kardGroupCount++) + "-name";
    if (group.getAttribute("aria-labelledby") !== label.id) group.setAttribute("aria-labelledby", label.id);
  });
}
new MutationObserver(() => {
  if (!kardNaming) { kardNaming = true; requestAnimationFrame(kardNameGroups); }
}).observe(document.documentElement, {childList: true, subtree: true});
"""
"""Each radio and checkbox group is named by its label (aria-labelledby): "Rating ...", "Passage 2: <title>"."""

LIVE_REGIONS_JS = """
let kardLiveNaming = false;
function kardLiveRegions() {
  kardLiveNaming = false;
  // the status line is read out when it changes: "Student answered C, gold A: wrong", an error, a warning. The answer
  // cards are no live regions (they stream token by token; views.rationale_card marks them aria-busy meanwhile).
  // (its HTML's container: the block around it also holds Gradio's progress timer, which changes every 0.1 s)
  const status = document.querySelector("#kard-status .html-container");
  if (status && status.getAttribute("aria-live") !== "polite") {
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    status.setAttribute("aria-atomic", "true");
  }
  // Gradio's own status region reads out its untranslated keys ("common.complete", "common.loading") on every event
  document.querySelectorAll("div.sr-only[role=status]:not([aria-hidden])").forEach((region) => {
    region.setAttribute("aria-live", "off");
    region.setAttribute("aria-hidden", "true");
  });
}
kardLiveRegions();
new MutationObserver(() => {
  if (!kardLiveNaming) { kardLiveNaming = true; requestAnimationFrame(kardLiveRegions); }
}).observe(document.documentElement, {childList: true, subtree: true});
"""
"""The status line (#kard-status's HTML) a polite, atomic live region (role=status), set up as soon as Gradio draws it,
before any answer changes it; Gradio's own status region, which reads out untranslated keys, silenced."""

SHOWN_EDIT_JS = """
function kardShownEdit(openQuestion) {
  // what the page's correction controls show now, as the server's record of them (curating.draft) holds it
  const text = (id) => { const box = document.querySelector(id + " textarea"); return box ? box.value : ""; };
  const checked = (id) => [...document.querySelectorAll(id + " input:checked")]
    .map((box) => box.type === "radio" ? box.value : box.name).filter((value) => value);
  const one = (id) => checked(id)[0] ?? null;
  const rating = one("#kard-rating");
  return {rationale: text("#kard-editor"), note: text("#kard-note"), rating: rating === null ? null : Number(rating),
          tags: checked("#kard-tags"), marks: [...Array(%d).keys()].map((i) => one("#kard-mark-" + i)),
          answer: openQuestion ? text("#kard-answer-text") : one("#kard-answer")};
}
function kardShowsRecord(record) {
  // whether the page shows what the server's record holds (tags in any order; an empty answer as none)
  const shown = kardShownEdit(((record.item || {}).question || {}).kind === "open");
  const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  const sorted = (tags) => [...(tags || [])].sort();
  return shown.rationale === record.rationale && shown.note === record.note && same(shown.rating, record.rating)
    && same(sorted(shown.tags), sorted(record.tags)) && same(shown.answer || null, record.answer || null)
    && shown.marks.every((mark, i) => same(mark, (record.marks || [])[i]));
}
""" % MAX_MARKED
"""The correction controls as the page shows them (kardShownEdit: the editor, note, rating, tags, passage marks and
answer), and whether they show what a record of the server holds (kardShowsRecord)."""

TYPED_TEXT_JS = """
const KARD_EDIT_CONTROLS = "#kard-editor, #kard-note, #kard-rating, #kard-tags, #kard-answer, #kard-answer-text, "
  + "[id^=kard-mark-]";
function kardKeepShown() {
  const tab = sessionStorage.getItem("kard-tab");
  let base = null;
  try { base = JSON.parse(localStorage.getItem("kard-base:" + tab)); } catch (e) { return; }
  if (!tab || !base || !base.item) return;
  const shown = kardShownEdit((base.item.question || {}).kind === "open");
  localStorage.setItem("kard-typed:" + tab, JSON.stringify({...shown, seal: base.item.seal, kept_at: Date.now()}));
}
document.addEventListener("input", (event) => {
  // kept at once, in this browser: a draft written after a server event is not written while the server is down
  if (!(event.target.closest && event.target.closest(KARD_EDIT_CONTROLS))) return;
  // a click on a radio leaves the one it replaces checked until Gradio redraws the group: read them after that
  if (event.target.type === "radio") { setTimeout(kardKeepShown, 0); } else { kardKeepShown(); }
});
"""
"""The correction controls as the page shows them (kardShownEdit), kept under kard-typed:<tab> on every keystroke or
click, with the seal of the item they were set for (the tab's last record from the server, kard-base:<tab>).
blocks.TAB_JS prefers them on a reload; blocks.KEEP_DRAFT_JS drops them once the server has kept what the page
shows (kardShowsRecord)."""

CLEAR_RATING_JS = """() => {
  // "No rating" clears the rating here, at once, with no server event (it may be down), and keeps the cleared
  // controls in this browser as a click on a rating would (TYPED_TEXT_JS); the null it returns sets the radio
  document.querySelectorAll("#kard-rating input:checked").forEach((box) => { box.checked = false; });
  if (typeof kardKeepShown === "function") kardKeepShown();
  return null;
}"""
"""The "No rating" button's click (blocks.wire_editor): the rating radio cleared in the page and kept so."""

KEYBOARD_JS = """
// keyboard use marks the page (html.kard-keyboard) until the next click or tap: text fields and dropdowns show their
// focus ring only then (views.CSS), as the browser shows buttons' rings (a clicked text field is :focus-visible too)
const kardKeyboardKeys = new Set(["Tab", "Shift", "Escape", "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home",
  "End", "PageUp", "PageDown", "F6"]);
// on the window, capturing: before any handler of the page's (the dropdown's stops some keys)
window.addEventListener("keydown", (event) => {
  if (kardKeyboardKeys.has(event.key)) document.documentElement.classList.add("kard-keyboard");
}, true);
window.addEventListener("pointerdown", () => document.documentElement.classList.remove("kard-keyboard"), true);
"""
"""Whether the last thing a person did was a key that moves around the page (html.kard-keyboard) or a click."""

PAGE_HEAD = (f"<script>{SHORTCUTS_JS}{DROPDOWN_JS}{GROUP_NAMES_JS}{LIVE_REGIONS_JS}{KEYBOARD_JS}{SHOWN_EDIT_JS}"
             f"{TYPED_TEXT_JS}</script>")
"""The page's head: every script above."""
