import { registry } from "@web/core/registry";
import { withPatience } from "./bjet_api_sync_config_tour";

// Narrowest path, operator or value editor that shows "does not contain".
const MIN_EDITOR_WIDTH = 180;

/** Throw unless ``inner`` lies horizontally inside ``outer``. */
function assertInside(inner, outer, what) {
    const a = inner.getBoundingClientRect();
    const b = outer.getBoundingClientRect();
    if (a.left < b.left - 1 || a.right > b.right + 1) {
        throw new Error(`${what} is clipped: ${a.left}-${a.right} outside ${b.left}-${b.right}`);
    }
}

// The Filter Domain editor beside the chatter: every rule's path, operator,
// value and buttons stay readable inside the form, which does not scroll sideways.
registry.category("web_tour.tours").add("bjet_api_sync_domain_fit_tour", {
    steps: () =>
        withPatience([
            {
                content: "The Filter Domain editor shows its rule",
                trigger: ".o_form_view .o_field_widget[name='filter_domain'] .o_tree_editor_node_control_panel .fa-trash",
            },
            {
                content: "It fits",
                trigger: ".o_form_view .o_field_widget[name='filter_domain']",
                run() {
                    const field = this.anchor;
                    const sheet = document.querySelector(".o_form_sheet");
                    assertInside(field, sheet, "The Filter Domain");
                    for (const part of field.querySelectorAll(
                        ".o_tree_editor_condition > *, .o_tree_editor_node_control_panel .btn"
                    )) {
                        assertInside(part, field, `'${part.textContent.trim() || part.className}'`);
                    }
                    // Wide enough to read: no operator squeezed to "d…".
                    for (const editor of field.querySelectorAll(".o_tree_editor_editor")) {
                        if (editor.getBoundingClientRect().width < MIN_EDITOR_WIDTH) {
                            throw new Error(`'${editor.textContent.trim()}' is squeezed`);
                        }
                    }
                    for (const scroller of document.querySelectorAll(".o_content, .o_form_sheet_bg")) {
                        if (scroller.scrollWidth > scroller.clientWidth + 1) {
                            throw new Error(`${scroller.className} scrolls sideways`);
                        }
                    }
                },
            },
        ]),
});
