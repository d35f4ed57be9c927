// scadactl import and scadactl project init (runtime.h).
#include <nlohmann/json.hpp>

#include <array>
#include <istream>
#include <ostream>

#include "importer/importer.h"
#include "json_line.h"
#include "runtime/runtime.h"

namespace scada::runtime {

namespace {

using importer::ChangeKind;
using nlohmann::ordered_json;

constexpr std::size_t kListed = 50;  // changes listed per kind in the text output

const char* sign(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::add:
      return "+";
    case ChangeKind::change:
      return "~";
    case ChangeKind::remove:
      return "-";
  }
  return "?";
}

template <class Change>
std::array<std::size_t, 3> count(const std::vector<Change>& changes) {
  std::array<std::size_t, 3> n{0, 0, 0};
  for (const Change& c : changes) ++n[std::size_t(c.kind)];
  return n;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

std::string connection_text(const importer::ProjectConnection& c) {
  return c.address + ":" + std::to_string(c.port) + " " + channel::security_mode_name(c.security);
}

std::string tag_text(const importer::ProjectTag& t) {
  return t.address + " " + t.type + " " + (t.access == tags::Access::read_write ? "rw" : "r") +
         " every " + std::to_string(t.cycle.count()) + " ms";
}

// "Tags: 3 to add, 1 to change, 0 to remove" and the first kListed changes, one a line.
template <class Change, class Describe>
void print_changes(const char* title, const std::vector<Change>& changes, Describe describe,
                   std::ostream& out) {
  const auto n = count(changes);
  out << title << ": " << n[0] << " to add, " << n[1] << " to change, " << n[2] << " to remove\n";
  for (std::size_t i = 0; i < changes.size() && i < kListed; ++i) {
    const Change& c = changes[i];
    out << "  " << sign(c.kind) << " " << c.name;
    if (c.kind == ChangeKind::add) out << "  " << describe(c.after);
    if (c.kind == ChangeKind::change) out << "  (" << join(c.fields) << ")";
    out << "\n";
  }
  if (changes.size() > kListed) out << "  ... and " << changes.size() - kListed << " more\n";
}

void print_plan(const importer::Bundle& bundle, const importer::ImportPlan& plan,
                std::ostream& out) {
  out << "Bundle " << bundle.document.string() << ": tool '" << bundle.tool << "', project '"
      << bundle.project << "', exported " << bundle.exported_at << "\n";
  print_changes("Connections", plan.connections, connection_text, out);
  print_changes("Tags", plan.tags, tag_text, out);
  out << "Certificates: " << plan.certificates.size() << " (" << plan.new_certificates()
      << " new)\n";
  for (const auto& p : plan.certificates) {
    const certstore::CertificateInfo& i = p.certificate.info;
    out << "  " << importer::certificate_role_name(p.certificate.role) << " of " << p.plc
        << (p.is_new ? ", new" : ", already there") << "\n"
        << "    subject  " << i.subject << "\n"
        << "    issuer   " << i.issuer << "\n"
        << "    SHA-256  " << i.sha256 << "\n"
        << "    valid    " << certstore::time_text(i.not_before) << " to "
        << certstore::time_text(i.not_after) << "\n"
        << "    goes to  " << p.target.string() << "\n";
  }
}

template <class Change>
ordered_json changes_json(const std::vector<Change>& changes) {
  ordered_json list = ordered_json::array();
  for (const Change& c : changes) {
    list.push_back(
        {{"change", importer::change_kind_name(c.kind)}, {"name", c.name}, {"fields", c.fields}});
  }
  return list;
}

ordered_json plan_json(const importer::Bundle& bundle, const importer::ImportPlan& plan) {
  ordered_json j;
  j["bundle"] = bundle.document.string();
  j["tool"] = bundle.tool;
  j["project"] = bundle.project;
  j["exported_at"] = bundle.exported_at;
  j["connections"] = changes_json(plan.connections);
  j["tags"] = changes_json(plan.tags);
  j["certificates"] = ordered_json::array();
  for (const auto& p : plan.certificates) {
    const certstore::CertificateInfo& i = p.certificate.info;
    j["certificates"].push_back({{"role", importer::certificate_role_name(p.certificate.role)},
                                 {"plc", p.plc},
                                 {"subject", i.subject},
                                 {"issuer", i.issuer},
                                 {"sha256", i.sha256},
                                 {"not_before", certstore::time_text(i.not_before)},
                                 {"not_after", certstore::time_text(i.not_after)},
                                 {"new", p.is_new},
                                 {"target", p.target.string()}});
  }
  return j;
}

ordered_json problems_json(const std::vector<importer::Problem>& problems) {
  ordered_json list = ordered_json::array();
  for (const auto& p : problems) {
    list.push_back(
        {{"severity", p.severity == importer::Problem::Severity::error ? "error" : "warning"},
         {"line", p.line},
         {"element", p.element},
         {"message", p.message}});
  }
  return list;
}

}  // namespace

int import_command(const ImportOptions& o, std::istream& in, std::ostream& out, std::ostream& err) {
  ordered_json result;
  const auto finish = [&](int code, bool imported) {
    if (o.json) {
      result["imported"] = imported;
      result["dry_run"] = o.dry_run;
      out << json_line(result) << "\n";
    }
    return code;
  };
  std::optional<importer::Project> project;
  try {
    project = importer::Project::open(o.project);
  } catch (const importer::ProjectError& e) {
    err << "scadactl import: " << e.what() << "\n";
    result["error"] = e.what();
    return finish(2, false);
  }
  const importer::BundleResult read = importer::read_bundle(o.bundle);
  result["valid"] = read.ok();
  result["problems"] = problems_json(read.problems);
  for (const auto& p : read.problems) {
    (p.severity == importer::Problem::Severity::error ? err : out) << p.to_string() << "\n";
  }
  if (!read.ok()) {
    std::size_t errors = 0;
    for (const auto& p : read.problems) errors += p.severity == importer::Problem::Severity::error;
    err << "scadactl import: " << o.bundle << " is not valid (" << errors
        << (errors == 1 ? " problem" : " problems") << "); nothing was changed\n";
    return finish(1, false);
  }
  const importer::Bundle& bundle = *read.bundle;
  importer::ImportPlan plan;
  try {
    plan = importer::plan_import(bundle, *project);
  } catch (const importer::ProjectError& e) {
    err << "scadactl import: " << e.what() << "\n";
    return finish(2, false);
  }
  const ordered_json planned = plan_json(bundle, plan);
  for (const auto& [key, value] : planned.items()) result[key] = value;
  if (!o.json) print_plan(bundle, plan, out);
  if (o.dry_run) {
    if (!o.json) out << "Dry run: nothing was changed.\n";
    return finish(0, false);
  }
  if (!plan.changes_anything()) {
    if (!o.json) out << "Nothing to change: the project already holds this bundle.\n";
    return finish(0, false);
  }
  if (plan.new_certificates() > 0 && !o.yes) {
    err << "Trust " << plan.new_certificates()
        << " new certificate(s) listed above and import? [y/N] " << std::flush;
    std::string answer;
    std::getline(in, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      err << "\nscadactl import: not imported (no confirmation; --yes answers for scripts)\n";
      return finish(3, false);
    }
  }
  try {
    importer::apply_import(*project, bundle, plan);
  } catch (const importer::ProjectError& e) {
    err << "scadactl import: " << e.what() << "\n";
    return finish(2, false);
  }
  if (!o.json) out << "Imported.\n";
  return finish(0, true);
}

int project_init_command(const std::string& dir, std::ostream& out, std::ostream& err, bool json) {
  nlohmann::ordered_json result{{"project", dir}, {"created", false}};
  try {
    importer::Project::init(dir);
  } catch (const importer::ProjectError& e) {
    err << "scadactl project init: " << e.what() << "\n";
    result["error"] = e.what();
    if (json) out << json_line(result) << "\n";
    return 2;
  }
  result["created"] = true;
  if (json) {
    out << json_line(result) << "\n";
  } else {
    out << "Created an empty project in " << dir
        << " (project.db, pki/roots, pki/own, device-certificate-store)\n";
  }
  return 0;
}

}  // namespace scada::runtime
