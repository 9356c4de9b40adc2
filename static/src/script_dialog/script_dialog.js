import { Component, useState } from "@odoo/owl";
import { CodeEditor } from "@web/core/code_editor/code_editor";
import { Dialog } from "@web/core/dialog/dialog";
import { evaluateBooleanExpr } from "@web/core/py_js/py";
import { registry } from "@web/core/registry";
import { user } from "@web/core/user";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";

const LINE_MODEL = "bj.api.sync.config.line";

/**
 * The "Python Script" dialog of a configuration line. It edits the line of the
 * form, saved or not: Save checks the script on the server (syntax and the
 * sandbox's rules), shows the error here, and only then writes it into the line,
 * which the form saves with everything else. A warning (an Evaluate script that
 * never sets result) is shown first; Save again keeps the script.
 */
export class ScriptDialog extends Component {
    static template = "bjet_api_sync.ScriptDialog";
    static components = { CodeEditor, Dialog };
    static props = {
        record: Object,
        readonly: Boolean,
        close: Function,
    };

    setup() {
        this.orm = useService("orm");
        const { python_script, script_mode } = this.props.record.data;
        this.state = useState({
            script: python_script || "",
            mode: script_mode || this.modes[0][0],
            error: "",
            warning: "",
        });
    }

    get modes() {
        return this.props.record.fields.script_mode.selection;
    }

    async save() {
        const { script, mode } = this.state;
        const { error, warning } = await this.orm.call(LINE_MODEL, "check_python_script", [
            script,
            mode,
        ]);
        if (error) {
            this.state.error = error;
            return;
        }
        // A warning is shown once: saving the same script again keeps it.
        if (warning && this.state.warning !== warning) {
            this.state.warning = warning;
            return;
        }
        await this.props.record.update({
            python_script: this.state.script,
            script_mode: this.state.mode,
        });
        this.props.close();
    }
}

/** The "Script" button of a line whose Value Calculation Type is a script. */
export class ScriptButton extends Component {
    static template = "bjet_api_sync.ScriptButton";
    static props = standardWidgetProps;

    setup() {
        this.dialog = useService("dialog");
    }

    get visible() {
        return this.props.record.data.has_script && "python_script" in this.props.record.fields;
    }

    open() {
        const record = this.props.record;
        this.dialog.add(ScriptDialog, {
            record,
            // Scripts are code: Settings administrators only (the server checks too).
            readonly:
                !record.model.root.isInEdition ||
                !user.isSystem ||
                evaluateBooleanExpr(
                    record.activeFields.python_script.readonly,
                    record.evalContextWithVirtualIds
                ),
        });
    }
}

// The list declares has_script, script_mode and python_script (invisible columns).
registry.category("view_widgets").add("bj_script_button", { component: ScriptButton });
