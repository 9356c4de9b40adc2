import { registry } from "@web/core/registry";
import { withPatience } from "./bjet_api_sync_config_tour";

const APP = "bjet_api_sync.menu_api_sync_app";

/** Open a screen of the API Sync app from its menu, then the record the test made. */
function openScreen(menu, title, record) {
    return [
        {
            content: `Open ${title} from the app's menu`,
            trigger: `.o_menu_sections [data-menu-xmlid='${menu}']`,
            run: "click",
        },
        ...showScreen(title, record),
    ];
}

function showScreen(title, record) {
    return [
        {
            content: `${title} is shown`,
            trigger: `.o_breadcrumb:contains('${title}')`,
        },
        {
            content: `Open ${record}`,
            trigger: `.o_list_view .o_data_row:contains('${record}') td.o_data_cell`,
            run: "click",
        },
        {
            content: `${record} opens in its form`,
            trigger: `.o_form_view .o_form_sheet`,
        },
    ];
}

// From the home menu to each screen of the API Sync app, as a user who is not a
// Settings administrator: the records the Python test made open in their forms.
registry.category("web_tour.tours").add("bjet_api_sync_app_menu_tour", {
    steps: () =>
        withPatience([
            {
                content: "Open the home menu",
                trigger: ".o_navbar_apps_menu button",
                run: "click",
            },
            {
                content: "Open the API Sync app",
                // The dropdown's items are rendered in a popover, outside the navbar.
                trigger: `.dropdown-item.o_app[data-menu-xmlid='${APP}']`,
                run: "click",
            },
            ...showScreen("API Configuration", "Menu tour configuration"),
            ...openScreen("bjet_api_sync.menu_api_sync_app_job", "Outbound Queue", "Menu tour configuration"),
            ...openScreen("bjet_api_sync.menu_api_sync_app_log", "Logs", "Menu tour configuration"),
            {
                content: "Back to the configurations from the app's menu",
                trigger: `.o_menu_sections [data-menu-xmlid='bjet_api_sync.menu_api_sync_app_config']`,
                run: "click",
            },
            {
                content: "The configurations are listed",
                trigger: ".o_list_view .o_data_row:contains('Menu tour configuration')",
            },
        ]),
});
