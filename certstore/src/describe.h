// How certificates and times appear in details and events: one line an operator can act on.
#pragma once

#include <string>

#include "certstore/certstore.h"

namespace scada::certstore {

// "CN=PLC1,O=Plant A (sha256 3f1c…64 hex digits)"; a long subject is cut with "…".
std::string certificate_text(const CertificateInfo& certificate);

// "CN=PLC1 (sha256 …), issued by CN=Root CA, valid 2030-06-01T08:00:00Z to 2032-06-01T08:00:00Z"
std::string certificate_facts(const CertificateInfo& certificate);

// A name cut to a length fit for one log line.
std::string shortened(const std::string& text);

}  // namespace scada::certstore
