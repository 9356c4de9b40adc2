import { Component } from "@odoo/owl";
import { ConfirmationDialog } from "@web/core/confirmation_dialog/confirmation_dialog";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";

/**
 * "Test Connection" tests the saved configuration: an In configuration's own
 * endpoint answers from what is saved, and the log row of the test belongs to
 * a saved configuration. A form with unsaved changes asks first, instead of
 * saving them behind the user's back as an object button would: "Save and
 * test" saves, then tests; "Cancel" keeps the changes on screen, unsaved and
 * untested.
 */
export class TestConnectionButton extends Component {
    static template = "bjet_api_sync.TestConnectionButton";
    static props = standardWidgetProps;

    setup() {
        this.action = useService("action");
        this.dialog = useService("dialog");
        this.orm = useService("orm");
    }

    async onClick() {
        const record = this.props.record;
        if (!record.isNew && !(await record.isDirty())) {
            return this.test();
        }
        this.dialog.add(ConfirmationDialog, {
            title: _t("Save and test?"),
            body: _t(
                "Test Connection tests the saved configuration. Save your changes, then test?"
            ),
            confirmLabel: _t("Save and test"),
            confirm: async () => {
                if (await record.save()) {
                    await this.test();
                }
            },
            cancel: () => {},
        });
    }

    async test() {
        const action = await this.orm.call(
            this.props.record.resModel,
            "action_test_connection",
            [[this.props.record.resId]]
        );
        await this.action.doAction(action);
    }
}

registry.category("view_widgets").add("bj_test_connection", { component: TestConnectionButton });
