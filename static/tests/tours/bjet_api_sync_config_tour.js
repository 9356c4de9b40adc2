import { registry } from "@web/core/registry";

// Where the Out configuration sends: a local HTTP server of the Python test,
// which stores its URL here before it starts the tour.
export const SINK_URL_KEY = "bjet_api_sync.tour_sink_url";

// Views, fields and the Python Script check wait on a server that shares two
// cores with other test runs: a step may take longer than the default 10 s.
export function withPatience(steps) {
    return steps.map((step) => ({ timeout: 30000, ...step }));
}

const LINES = ".o_field_widget[name='line_ids']";
const ROW = `${LINES} .o_data_row.o_selected_row`;

/** Type in a many2one (or many2many tags) field and pick the suggestion whose
 * text is exactly ``label``. */
function pick(fieldSelector, search, label, { tags = false } = {}) {
    return [
        {
            content: `Search ${search}`,
            trigger: `${fieldSelector} input`,
            run: `edit ${search}`,
        },
        {
            content: `Pick ${label}`,
            trigger: `.o-autocomplete--dropdown-item a:contains('${label}')`,
            run() {
                const items = document.querySelectorAll(".o-autocomplete--dropdown-item a");
                [...items].find((item) => item.textContent.trim() === label).click();
            },
        },
        {
            content: `${label} chosen`,
            trigger: tags
                ? `${fieldSelector} .o_tag:contains('${label}')`
                : `${fieldSelector} input:value('${label}')`,
        },
    ];
}

function typeScript(script) {
    return {
        content: "Write the script",
        trigger: ".modal .ace_editor",
        run() {
            window.ace.edit(document.querySelector(".modal .ace_editor")).setValue(script, 1);
        },
    };
}

// The original's FAQ ("How do I handle different date formats?"), as written:
// statements that never set result.
const FAQ_DATE_SNIPPET = `from datetime import datetime

def convert_date(date_string):
    # Parse MM/DD/YYYY format
    dt = datetime.strptime(date_string, '%m/%d/%Y')
    # Return Odoo format YYYY-MM-DD
    return dt.strftime('%Y-%m-%d')
`;

/** Save a first version of the script that the dialog's check answers with ``alert``. */
function checkScript(text, what, alert) {
    return [
        typeScript(text),
        {
            content: `Save ${what}`,
            trigger: ".modal .modal-footer .btn-primary:contains('Save')",
            run: "click",
        },
        {
            content: "The dialog shows why and stays open",
            trigger: `.modal ${alert}`,
        },
    ];
}

/** Write a script in the Python Script dialog of the line being edited; a
 * ``broken`` script first shows the dialog's check, an ``unset`` one (Evaluate
 * statements that never set result) its warning. */
function writeScript(script, broken, unset) {
    const check = [
        ...(broken
            ? checkScript(broken, "the broken script", ".alert-danger:contains('SyntaxError')")
            : []),
        ...(unset
            ? checkScript(unset, "a script that sets no result",
                          ".alert-warning:contains(\"never set 'result'\")")
            : []),
    ];
    return [
        {
            content: "Open the Python Script dialog of the new, unsaved line",
            trigger: `${ROW} .o_bj_script_button`,
            run: "click",
        },
        {
            content: "The dialog shows its user manual and the evaluation mode",
            trigger: ".modal:contains('User manual'):contains('request_data'):contains('Script Evaluation Mode')",
        },
        ...check,
        typeScript(script),
        {
            content: "Save the script",
            trigger: ".modal .modal-footer .btn-primary:contains('Save')",
            run: "click",
        },
        {
            content: "The dialog closes",
            trigger: "body:not(:has(.modal))",
        },
    ];
}

/** Add a line: Field, Value Calculation Type, External API Key, and a script for script types. */
function addLine({ field, type, key, script, broken, unset, mapping, identifier }) {
    return [
        {
            content: `Add a line for ${field}`,
            trigger: `${LINES} .o_field_x2many_list_row_add a`,
            run: "click",
        },
        ...pick(`${ROW} .o_field_widget[name='field_id']`, field, `${field} (Contact)`),
        {
            content: "A new line is Plain",
            trigger: `${ROW} .o_field_widget[name='value_type'] select:has(option:selected:contains('Plain'))`,
        },
        ...(type === "Plain"
            ? []
            : [
                  {
                      content: `Value Calculation Type: ${type}`,
                      trigger: `${ROW} .o_field_widget[name='value_type'] select`,
                      run: `selectByLabel ${type}`,
                  },
              ]),
        {
            content: `External API Key: ${key}`,
            trigger: `${ROW} .o_field_widget[name='external_key'] input`,
            run: `edit ${key}`,
        },
        ...(mapping ? pick(`${ROW} .o_field_widget[name='mapping_config_id']`, mapping, mapping) : []),
        ...(identifier
            ? [
                  {
                      content: "This line identifies the records",
                      trigger: `${ROW} .o_field_widget[name='is_identifier'] input`,
                      run: "click",
                  },
              ]
            : []),
        ...(script ? writeScript(script, broken, unset) : []),
    ];
}

export function save() {
    return [
        {
            content: "Save",
            trigger: ".o_form_button_save",
            run: "click",
        },
        {
            content: "Saved",
            trigger: ".o_form_view .o_form_saved",
        },
    ];
}

function newConfiguration(name, requestType) {
    return [
        {
            content: "Create another configuration",
            trigger: ".o_form_button_create",
            run: "click",
        },
        {
            content: "Name it, once the new form has replaced the saved one",
            trigger: ".o_form_view:not(:has(.o_field_widget[name='endpoint'])) .o_field_widget[name='name'] input",
            run: `edit ${name}`,
        },
        {
            content: `Request Type ${requestType}`,
            trigger: ".o_form_view .o_field_widget[name='request_type'] select",
            run: `selectByLabel ${requestType}`,
        },
        ...pick(".o_form_view .o_field_widget[name='model_id']", "res.partner", "Contact"),
    ];
}

registry.category("web_tour.tours").add("bjet_api_sync_config_tour", {
    steps: () =>
        withPatience([
            {
                content: "The API Configuration list offers to re-encrypt the secrets",
                trigger: ".o_list_view .o_control_panel button[name='action_rotate_encryption_key']",
                run: "click",
            },
            {
                content: "… after a confirmation",
                trigger: ".modal:contains('encrypted again') .modal-footer button:contains('Cancel')",
                run: "click",
            },
            {
                content: "Nothing happened",
                trigger: "body:not(:has(.modal))",
            },
            // -- an In configuration from scratch -----------------------------------------
            {
                content: "Create a configuration",
                trigger: ".o_list_button_add",
                run: "click",
            },
            {
                content: "Name it",
                trigger: ".o_form_view .o_field_widget[name='name'] input",
                run: "edit Tour Contacts In",
            },
            {
                content: "Request Type In",
                trigger: ".o_form_view .o_field_widget[name='request_type'] select",
                run: "selectByLabel In",
            },
            {
                content: "A new In configuration uses a Bearer Token, generated and shown in clear",
                trigger: ".o_form_view .o_field_widget[name='bearer_token'] input:not([type='password']):value(/\\w/)",
            },
            ...pick(".o_form_view .o_field_widget[name='model_id']", "res.partner", "Contact"),
            {
                content: "Endpoint",
                trigger: ".o_form_view .o_field_widget[name='endpoint'] input",
                run: "edit tour-contacts",
            },
            ...pick(".o_form_view .o_field_widget[name='http_method_ids']", "GET", "GET", { tags: true }),
            ...pick(".o_form_view .o_field_widget[name='http_method_ids']", "POST", "POST", { tags: true }),
            {
                content: "Try No Auth",
                trigger: ".o_form_view .o_field_widget[name='authorization_type'] select",
                run: "selectByLabel No Auth",
            },
            {
                content: "No Auth with a write method: the form warns",
                trigger: ".o_form_view .alert-warning:contains('Anyone can change data')",
            },
            {
                content: "Back to Bearer Token",
                trigger: ".o_form_view .o_field_widget[name='authorization_type'] select",
                run: "selectByLabel Bearer Token",
            },
            {
                content: "The warning is gone",
                trigger: ".o_form_view:not(:has(.alert-warning:contains('Anyone can change data')))",
            },
            {
                content: "Open the Security tab",
                trigger: ".o_notebook .nav-link:contains('Security')",
                run: "click",
            },
            ...pick(".o_form_view .o_field_widget[name='run_as_user_id']", "Admin", "Administrator"),
            {
                content: "Back to the Configuration Lines",
                trigger: ".o_notebook .nav-link:contains('Configuration Lines')",
                run: "click",
            },
            ...addLine({ field: "Reference", type: "Plain", key: "ref", identifier: true }),
            ...addLine({
                field: "Notes",
                type: "Python Script for Plain Value",
                key: "notes",
                script: "(request_data.get('notes') or '').strip() or 'Created through the API'",
                broken: "def (",
            }),
            ...addLine({
                field: "Tags",
                type: "Relational with Python Script",
                key: "tags",
                script: "tags = env['res.partner.category'].search([('name', 'in', request_data.get('tags') or [])])\nresult = tags.ids",
                unset: FAQ_DATE_SNIPPET,
            }),
            ...save(),
            {
                content: "Once saved, the token is masked",
                trigger: ".o_form_view .o_field_widget[name='bearer_token'] input[type='password']",
            },
            // -- an Out configuration from scratch ----------------------------------------
            ...newConfiguration("Tour Contacts Out", "Out"),
            {
                content: "Request URL: the test's local server",
                trigger: ".o_form_view .o_field_widget[name='request_url'] input",
                run: `edit ${localStorage.getItem(SINK_URL_KEY)}/contacts`,
            },
            ...pick(".o_form_view .o_field_widget[name='http_method_ids']", "POST", "POST", { tags: true }),
            {
                content: "No Auth for this external API",
                trigger: ".o_form_view .o_field_widget[name='authorization_type'] select:has(option:selected:contains('No Auth'))",
            },
            ...addLine({ field: "Reference", type: "Plain", key: "ref", identifier: true }),
            ...addLine({
                field: "Email",
                type: "Python Script for Plain Value",
                key: "email",
                script: "(record.email or '').lower()",
            }),
            ...addLine({
                field: "Related Company",
                type: "Relational with Mapping Model",
                key: "company",
                mapping: "Tour Contacts In",
            }),
            ...addLine({
                field: "Tags",
                type: "Relational with Python Script",
                key: "tag_names",
                script: "result = record.category_id.mapped('name')",
            }),
            ...save(),
            {
                content: "Test Connection",
                trigger: ".o_form_view .o_form_statusbar button[name='action_test_connection']",
                run: "click",
            },
            {
                content: "The local server answered",
                trigger: ".o_notification:contains('Connection successful')",
            },
            {
                content: "Open the Logs",
                trigger: "button[name='action_view_logs']:contains('Logs')",
                run: "click",
            },
            {
                content: "Open the log row of the test",
                trigger: ".o_list_view .o_data_row .o_data_cell[name='url']:contains('/contacts')",
                run: "click",
            },
            {
                content: "The log row shows the answer",
                trigger: ".o_form_view .o_field_widget[name='status_code']:contains('200')",
            },
        ]),
});
