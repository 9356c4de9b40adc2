import { registry } from "@web/core/registry";
import { withPatience } from "./bjet_api_sync_config_tour";

const ROW = ".o_field_widget[name='line_ids'] .o_data_row.o_selected_row";

// An API Sync Manager adds a line to their own configuration: the script types,
// which only Settings administrators may choose, are not offered.
registry.category("web_tour.tours").add("bjet_api_sync_manager_line_tour", {
    steps: () =>
        withPatience([
            {
                content: "Add a line",
                trigger: ".o_field_widget[name='line_ids'] .o_field_x2many_list_row_add a",
                run: "click",
            },
            {
                content: "The new line offers the other types",
                trigger: `${ROW} .o_field_widget[name='value_type'] select:has(option:contains('Relational with Mapping Model'))`,
            },
            {
                content: "… and no script type",
                trigger: `${ROW} .o_field_widget[name='value_type'] select:not(:has(option:contains('Python Script')))`,
            },
            {
                content: "Discard",
                trigger: ".o_form_button_cancel",
                run: "click",
            },
            {
                content: "Nothing was added",
                trigger: ".o_form_view .o_form_saved",
            },
        ]),
});
