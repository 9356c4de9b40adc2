import { registry } from "@web/core/registry";
import { SINK_URL_KEY, withPatience } from "./bjet_api_sync_config_tour";

const URL_INPUT = ".o_form_view .o_field_widget[name='request_url'] input";
const TEST = ".o_form_view .o_form_statusbar button[name='action_test_connection']";

// A Request URL typed only to try it: Test Connection asks before it saves it.
// Cancel keeps it on screen and stores nothing (Discard brings back the saved
// one); "Save and test" saves it, then tests it.
registry.category("web_tour.tours").add("bjet_api_sync_test_connection_tour", {
    steps: () => {
        const sink = localStorage.getItem(SINK_URL_KEY);
        return withPatience([
            {
                content: "The saved Request URL",
                trigger: `${URL_INPUT}:value('${sink}/saved')`,
            },
            {
                content: "Type another one",
                trigger: URL_INPUT,
                run: `edit ${sink}/typed`,
            },
            {
                content: "Test Connection",
                trigger: TEST,
                run: "click",
            },
            {
                content: "It asks first; cancel",
                trigger: ".modal:contains('Save and test?') .modal-footer button:contains('Cancel')",
                run: "click",
            },
            {
                content: "The typed URL is still on screen, unsaved",
                trigger: `body:not(:has(.modal)) ${URL_INPUT}:value('${sink}/typed')`,
            },
            {
                content: "Discard the changes",
                trigger: ".o_form_button_cancel",
                run: "click",
            },
            {
                content: "The saved URL was kept",
                trigger: `${URL_INPUT}:value('${sink}/saved')`,
            },
            {
                content: "Type the other one again",
                trigger: URL_INPUT,
                run: `edit ${sink}/typed`,
            },
            {
                content: "Test Connection again",
                trigger: TEST,
                run: "click",
            },
            {
                content: "Save and test",
                trigger: ".modal:contains('Save and test?') .modal-footer button:contains('Save and test')",
                run: "click",
            },
            {
                content: "The typed URL answered",
                trigger: `.o_notification:contains('Connection successful'):contains('/typed')`,
            },
            {
                content: "… and is saved",
                trigger: ".o_form_view .o_form_saved",
            },
            {
                content: "Close the notification",
                trigger: ".o_notification .o_notification_close",
                run: "click",
            },
            {
                content: "Closed",
                trigger: "body:not(:has(.o_notification))",
            },
            {
                content: "A saved form is tested at once",
                trigger: TEST,
                run: "click",
            },
            {
                content: "No question this time",
                trigger: "body:not(:has(.modal)) .o_notification:contains('Connection successful')",
            },
        ]);
    },
});
