"""Codes events give as reasons, in the words a coordinator reads on a timeline."""

# A code an event gives as its reason, in words; any other is shown as words made from it.
REASONS = {
    "supporter_ineligible": "the supporter is no longer eligible",
    "change_of_supporter": "the client asked for another supporter",
    "supporter_declined": "the supporter could not take the client on",
    "service_refused": "the client refused the service",
    "service_completed": "the funded service ended",
    "client_erased": "the client was erased",
    "cancelled_by_client": "the client cancelled",
    "cancelled_by_supporter": "the supporter cancelled",
    "consent_not_active": "consent is not active",
    "supporter_changed": "the client has another supporter",
    "matching-policy": "none meets one of the client's requirements",
    "eligible-with-free-slot": "no eligible supporter has a free slot",
    "no-conflict": "every free supporter has a conflict of interest",
    "not-declined": "the client declined every supporter who could",
    # Why a message to a person was held back or waits (``Notification*.because``).
    "do_not_contact": "they asked not to be contacted at all",
    "no_contact": "there are no contact details for that way of reaching them",
    "no_consent_to_contact": "they have not agreed to be contacted",
    "not_essential": "they asked for essential messages only",
    "no_channel": "the organisation has not set up that way of sending",
    "person_erased": "the person was erased",
    "quiet_hours": "it is their quiet hours",
    "contact_window": "it is outside the hours they may be contacted",
    "channel_unavailable": "the mail server or text gateway did not answer",
}
