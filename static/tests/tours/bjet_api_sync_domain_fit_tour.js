import { registry } from "@web/core/registry";
import { withPatience } from "./bjet_api_sync_config_tour";

/** Throw unless ``inner`` lies horizontally inside ``outer``. */
function assertInside(inner, outer, what) {
    const a = inner.getBoundingClientRect();
    const b = outer.getBoundingClientRect();
    if (a.left < b.left - 1 || a.right > b.right + 1) {
        throw new Error(`${what} is clipped: ${a.left}-${a.right} outside ${b.left}-${b.right}`);
    }
}

// The Filter Domain beside the chatter: its text and the count of matching
// records stay inside the form, which does not scroll sideways.
registry.category("web_tour.tours").add("bjet_api_sync_domain_fit_tour", {
    steps: () =>
        withPatience([
            {
                content: "The Filter Domain shows its text and its count",
                trigger: ".o_form_view .o_field_widget[name='filter_domain_count']:contains(/^\\s*\\d+\\s*$/)",
            },
            {
                content: "It fits",
                trigger: ".o_form_view .o_field_widget[name='filter_domain'] textarea",
                run() {
                    const sheet = document.querySelector(".o_form_sheet");
                    const field = this.anchor.closest(".o_field_widget");
                    assertInside(field, sheet, "The Filter Domain");
                    assertInside(this.anchor, field, "Its text");
                    if (this.anchor.scrollWidth > this.anchor.clientWidth + 1) {
                        throw new Error("The Filter Domain's text scrolls sideways");
                    }
                    const count = document.querySelector(
                        ".o_form_view .o_field_widget[name='filter_domain_count']"
                    );
                    assertInside(count, sheet, "Matching Records");
                    for (const scroller of document.querySelectorAll(".o_content, .o_form_sheet_bg")) {
                        if (scroller.scrollWidth > scroller.clientWidth + 1) {
                            throw new Error(`${scroller.className} scrolls sideways`);
                        }
                    }
                },
            },
        ]),
});
