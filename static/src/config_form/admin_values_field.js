import { registry } from "@web/core/registry";
import { user } from "@web/core/user";
import { SelectionField, selectionField } from "@web/views/fields/selection/selection_field";

/**
 * A selection some of whose values only Settings administrators may choose
 * (core/field_access.py, admin_values; the server sets this widget on every
 * such field of the addon's views, bj_api_access.offer_admin_values). Others
 * are not offered them, so that no change the server refuses can be made on
 * screen; a record that holds one still shows it.
 */
export class AdminValuesField extends SelectionField {
    static props = {
        ...SelectionField.props,
        adminValues: { type: Array, element: String },
    };

    get options() {
        const current = this.props.record.data[this.props.name];
        return super.options.filter(
            ([value]) =>
                user.isSystem || value === current || !this.props.adminValues.includes(value)
        );
    }
}

export const adminValuesField = {
    ...selectionField,
    component: AdminValuesField,
    extractProps(fieldInfo, dynamicInfo) {
        return {
            ...selectionField.extractProps(fieldInfo, dynamicInfo),
            adminValues: fieldInfo.options.admin_values,
        };
    },
};

registry.category("fields").add("bj_admin_values", adminValuesField);
