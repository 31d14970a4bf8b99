// The rule editor: show only the fields of the chosen kind of condition. Without
// this script every kind's fields are shown and the server reads the chosen one.

/** Hides the other kinds' field groups of `#regle-formulaire`, and follows the choice. */
export function initRuleForm(root) {
  const form = root.getElementById("regle-formulaire");
  const kind = form && form.querySelector("#genre");
  if (!kind) return;
  const show = () => {
    for (const group of form.querySelectorAll(".rule-kind")) {
      group.hidden = group.dataset.genre !== kind.value;
    }
  };
  kind.addEventListener("change", show);
  show();
}
