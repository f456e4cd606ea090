"""Queries shared by tests and benchmarks."""

FULL_CUSTOMER = """
fragment Full on Customer {
  id name firstName lastName emails phones segment
  addresses { line1 city postcode country }
  preferences { preferredChannel language consent { email sms phone } }
  identities { system id }
  accounts { number holder status currency balance overdue daysPastDue
             invoices { number accountNumber issuedOn dueOn amount amountPaid status } }
  invoices(first: 100) { number status }
  orders(first: 100) { number placedAt channel status total currency
           lines { lineNo sku productName quantity unitPrice }
           shipments { id orderNumber carrier trackingNumber status shippedAt deliveredAt } }
  tickets(first: 100) { id subject status priority channel createdAt updatedAt }
  interactions(first: 100) { id phone channel startedAt durationS agentId outcome summary
                             agent { id name skills languages productExpertise availability } }
  marketing { contactId optedOut optedOutAt }
  offers(first: 100) { id campaignId campaignName offerCode productSku channel sentAt openedAt clickedAt
                       respondedAt response }
  loyalty { cardNumber tier points memberSince rewards { id title pointsCost expiresOn } }
  warranties { serial customerRef productCode productName purchasedOn warrantyEndsOn
               claims { number rmaNumber openedOn status reason } }
  webActivity(first: 100) { id startedAt durationS device pages productsViewed }
}
"""

CUSTOMERS_FULL = FULL_CUSTOMER + "query Many($ids: [ID!]!) { customers(ids: $ids) { ...Full } }"
CUSTOMER_FULL = FULL_CUSTOMER + "query One($id: ID!) { customer(id: $id) { ...Full } }"

POINT_OF_SALE = """
query PointOfSale($phone: String!) {
  findCustomers(phone: $phone) {
    id name
    identities { system id }
    offers(withinDays: 30) { campaignName offerCode sentAt }
    tickets(unresolved: true) { id subject status priority }
  }
}
"""
