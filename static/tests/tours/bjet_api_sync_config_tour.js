import { registry } from "@web/core/registry";

// Walks the API Configuration form as an administrator would: the In/Out and
// authorization-dependent fields, the notebook, and the Python Script dialog.
registry.category("web_tour.tours").add("bjet_api_sync_config_tour", {
    steps: () => [
        {
            content: "The inbound form shows the Endpoint, not the Request URL",
            trigger: ".o_form_view div[name='endpoint']:not(:has(.o_field_empty))",
        },
        {
            content: "No Request URL on an inbound configuration",
            trigger: ".o_form_view:not(:has(div[name='request_url']))",
        },
        {
            content: "Open the Parameters tab",
            trigger: ".o_notebook .nav-link:contains('Parameters')",
            run: "click",
        },
        {
            content: "The Parameters tab explains itself",
            trigger: ".o_notebook .tab-pane.active:contains('User manual'):contains('create a domain based on them')",
        },
        {
            content: "Back to the Configuration Lines",
            trigger: ".o_notebook .nav-link:contains('Configuration Lines')",
            run: "click",
        },
        {
            content: "Open the script of the scripted line",
            trigger: ".o_field_one2many[name='line_ids'] button[name='action_open_script']",
            run: "click",
        },
        {
            content: "The Python Script dialog lists the script variables",
            trigger: ".modal .modal-title:contains('Python Script')",
        },
        {
            content: "… with its user manual and the evaluation mode",
            trigger: ".modal:contains('request_data'):contains('Script Evaluation Mode')",
        },
        {
            content: "Close the dialog",
            trigger: ".modal .modal-footer button:contains('Discard')",
            run: "click",
        },
        {
            content: "Wait until the dialog is closed and the form reloaded",
            trigger: "body:not(:has(.modal)) .o_form_view .o_form_saved",
        },
        {
            content: "Switch to Basic authentication",
            trigger: ".o_form_view div[name='authorization_type'] select",
            run: "selectByLabel Basic Auth",
        },
        {
            content: "Login and Password appear",
            trigger: ".o_form_view div[name='password'] input[type='password']",
        },
        {
            content: "Switch to an outbound configuration",
            trigger: ".o_form_view div[name='request_type'] select",
            run: "selectByLabel Out",
        },
        {
            content: "The outbound fields appear",
            trigger: ".o_form_view div[name='request_url']",
        },
        {
            content: "… and the inbound ones are gone",
            trigger: ".o_form_view:not(:has(div[name='endpoint'])):not(:has(.nav-link:contains('Parameters')))",
        },
        {
            content: "Timeouts are editable",
            trigger: ".o_form_view div[name='connection_timeout'] input",
        },
        {
            content: "Trigger Action is read-only until its model is chosen",
            trigger: ".o_form_view div[name='trigger_action_id'].o_readonly_modifier",
        },
        {
            content: "Discard the changes",
            trigger: ".o_form_button_cancel",
            run: "click",
        },
        {
            content: "Back to the saved inbound configuration",
            trigger: ".o_form_view div[name='endpoint']",
        },
    ],
});
