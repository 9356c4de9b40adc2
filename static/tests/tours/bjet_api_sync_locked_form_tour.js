import { registry } from "@web/core/registry";
import { withPatience } from "./bjet_api_sync_config_tour";

const FORM = ".o_form_view";

// An API Sync Manager opens an administrator's configuration with a script:
// the form says why it is read-only, and is.
registry.category("web_tour.tours").add("bjet_api_sync_locked_form_tour", {
    steps: () =>
        withPatience([
            {
                content: "The form tells the manager",
                trigger: `${FORM} .alert-info:contains('Only Settings administrators can change this configuration')`,
            },
            {
                content: "The name is read-only",
                trigger: `${FORM} .o_field_widget[name='name']:not(:has(input))`,
            },
            {
                content: "The Filter Domain is read-only",
                trigger: `${FORM} .o_field_widget[name='filter_domain']:not(:has(textarea))`,
            },
            {
                content: "No line can be added",
                trigger: `${FORM} .o_field_widget[name='line_ids']:not(:has(.o_field_x2many_list_row_add))`,
            },
            {
                content: "No token can be generated",
                trigger: `${FORM}:not(:has(button[name='action_generate_bearer_token']))`,
            },
        ]),
});
