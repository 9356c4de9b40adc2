import { registry } from "@web/core/registry";
import { save, withPatience } from "./bjet_api_sync_config_tour";

const FORM = ".o_form_view";
const DOMAIN = `${FORM} .o_field_widget[name='filter_domain'] textarea`;
const COUNT = `${FORM} .o_field_widget[name='filter_domain_count']`;
const PROBLEM = `${FORM} .o_field_widget[name='filter_domain_problem']`;
const NO_DIALOG = "body:not(:has(.modal))";
// The original's "last seven days" (its FAQ), as typed there.
const ORIGINAL_DOMAIN = "[('write_date', '>=', datetime.now() - timedelta(days=7))]";
// Code, not data: the server refuses it when saved.
const REFUSED_DOMAIN = "[('name', '=', env.user.name)]";

function countIs(count, content) {
    return { content, trigger: `${COUNT}:contains(/^\\s*${count}\\s*$/)` };
}

function domainIs(text) {
    return {
        content: "The Filter Domain reads as typed",
        trigger: DOMAIN,
        run() {
            if (this.anchor.value !== text) {
                throw new Error(`The Filter Domain reads ${this.anchor.value}`);
            }
        },
    };
}

/** Type ``text`` into the Filter Domain and leave the field, as a user does. */
function typeDomain(text) {
    return [
        {
            content: `Type ${text}`,
            trigger: DOMAIN,
            run: `edit ${text}`,
        },
        {
            content: "Leave the field",
            trigger: `${FORM} .o_form_label:contains('Matching Records')`,
            run: "click",
        },
    ];
}

// An administrator opens a configuration whose Filter Domain was saved by RPC
// (datetime.datetime.now()), types the original's domain (datetime.now()),
// saves and reopens it; each time the form counts the matching records. A
// domain the server refuses is named in the form, then by Save's Validation
// Error, and nothing is lost.
registry.category("web_tour.tours").add("bjet_api_sync_filter_domain_tour", {
    steps: () =>
        withPatience([
            countIs(1, "The form opens on the saved domain and counts its record"),
            { content: "No error dialog", trigger: NO_DIALOG },
            ...typeDomain(ORIGINAL_DOMAIN),
            countIs(2, "The count follows the typed domain before it is saved"),
            ...save(),
            { content: "Saved without a dialog", trigger: NO_DIALOG },
            {
                content: "Back to the list",
                trigger: ".o_breadcrumb .breadcrumb-item a",
                run: "click",
            },
            {
                content: "Reopen the configuration",
                trigger: ".o_list_view .o_data_row td[name='name']:contains('Domain Tour')",
                run: "click",
            },
            countIs(2, "The reopened form counts the records of the saved domain"),
            domainIs(ORIGINAL_DOMAIN),
            { content: "No error dialog", trigger: NO_DIALOG },
            ...typeDomain(REFUSED_DOMAIN),
            {
                content: "The form says why the domain cannot be counted",
                trigger: `${PROBLEM}:contains('is not allowed in a Filter Domain')`,
            },
            {
                content: "Save",
                trigger: ".o_form_button_save",
                run: "click",
            },
            {
                content: "Save shows the server's reason, not an Oops",
                trigger:
                    ".o_error_dialog:contains('Validation Error'):contains('is not allowed in a Filter Domain'):not(:contains('Oops'))",
            },
            {
                content: "Close the dialog",
                trigger: ".o_error_dialog .btn-primary:contains('Close')",
                run: "click",
            },
            {
                content: "Discard the refused domain",
                trigger: ".o_form_button_cancel",
                run: "click",
            },
            domainIs(ORIGINAL_DOMAIN),
            countIs(2, "The saved domain and its count are back"),
        ]),
});
