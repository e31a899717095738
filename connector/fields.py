"""The work-order fields of OutSmart's PostWorkorders, by their API names."""

from __future__ import annotations

__all__ = ["LIST_FIELDS", "WORKORDER_FIELDS"]

WORKORDER_FIELDS: frozenset[str] = frozenset(
    [
        "WorkorderNo",
        "OrderNr",
        "ProjectNr",
        "ExternProjectNr",
        "CustomerName",
        "CustomerDebtorNr",
        "CustomerStreet",
        "CustomerStreetNo",
        "CustomerEmail",
        "CustomerZIP",
        "CustomerCity",
        "CustomerContactPerson",
        "CustomerPhone",
        "CustomerRemark",
        "CustomerLatitude",
        "CustomerLongitude",
        "CustomerNameInvoice",
        "CustomerDebtorNrInvoice",
        "CustomerStreetInvoice",
        "CustomerStreetNoInvoice",
        "CustomerEmailInvoice",
        "CustomerZIPInvoice",
        "CustomerCityInvoice",
        "CustomerContactPersonInvoice",
        "CustomerPhoneInvoice",
        "CustomerRemarkInvoice",
        "TypeOfWork",
        "WorkDescription",
        "InternalWorkDescription",
        "PaymentMethod",
        "EmployeeNr",
        "WorkDate",
        "WorkTime",
        "WorkEndDate",
        "WorkEndTime",
        "WorkDeadline",
        "WorkDuration",
        "WorkStatus",
        "PickupPlanning",
        "WebPlanning",
        "CpnCode",
        "CpnCodeInvoice",
        "AdrCode",
        "ShortWorkDescription",
        "Comment",
        "ErrorCode",
        "ErrorMessage",
        "SolutionCode",
        "SolutionMessage",
        "PriorityCode",
        "PriorityMessage",
        "MinimumHours",
        "RoundingAmount",
        "Employees",
        "WorkObjects",
    ]
)

#: Fields that are arrays of strings on the wire; a template fills them
#: with a comma-separated list.
LIST_FIELDS: frozenset[str] = frozenset({"Employees", "WorkObjects"})
