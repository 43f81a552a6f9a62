// Tenant routes: authenticate, parse, resolve the adapter, tokenize, admit, hand to CompletionCall.
#include "gateway/openai_routes.h"

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "gateway/access_log.h"
#include "gateway/auth.h"
#include "gateway/completion_call.h"
#include "gateway/http_server.h"
#include "gateway/openapi/openapi_route.h"
#include "gateway/rate_limit_headers.h"

namespace quilt::gateway {
namespace {

using nlohmann::json;

// Forwards to the real writer and counts the status once.
class MeteredWriter final : public ForwardingWriter {
 public:
  MeteredWriter(std::shared_ptr<ResponseWriter> inner, Metrics& m, std::string route)
      : ForwardingWriter(std::move(inner)), metrics_(m), route_(std::move(route)) {}

 private:
  void on_start(int status, std::vector<std::pair<std::string, std::string>>&) override {
    metrics_.add("quilt_http_requests_total", {{"route", route_}, {"status", std::to_string(status)}});
  }
  Metrics& metrics_;
  std::string route_;
};

// The models a tenant may use: the base model, then every adapter it owns or that is shared.
json visible_models(Platform& p, const std::string& tenant) {
  json data = json::array();
  data.push_back({{"id", p.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "quilt"}});
  for (const adapters::AdapterInfo& a : p.registry->visible_to(tenant)) {
    // Another tenant's id would leak through owned_by: shared adapters say "shared".
    data.push_back({{"id", a.name}, {"object", "model"}, {"created", a.versions.empty() ? 0 : a.versions.back().created},
                    {"owned_by", a.owner == tenant ? tenant : std::string("shared")},
                    {"parent", p.model_id}});
  }
  return data;
}

void handle_models(Platform& p, HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
  auto tenant = authenticate_tenant(p, req, *w);
  if (!tenant) return;
  w = with_rate_limit_headers(p, *tenant, std::move(w));
  w->send(200, "application/json", json{{"object", "list"}, {"data", visible_models(p, tenant->id)}}.dump());
}

// GET /v1/models/{model}: one entry of the list; another tenant's private adapter is a 404 like
// a name that does not exist, so that names never leak.
void handle_model(Platform& p, HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
  auto tenant = authenticate_tenant(p, req, *w);
  if (!tenant) return;
  w = with_rate_limit_headers(p, *tenant, std::move(w));
  const std::string& id = req.params.at("model");
  for (const json& m : visible_models(p, tenant->id)) {
    if (m["id"] == id) return w->send(200, "application/json", m.dump());
  }
  send_error(*w, Status::NotFound("model '" + id + "' does not exist"), "model");
}

// Tokens of the prompt: the chat template rendered, a string encoded with BOS, or ids as given.
Result<std::vector<int32_t>> prompt_tokens(Platform& p, const CompletionRequest& r, std::string* text) {
  const engine::Tokenizer* tok = p.engine->tokenizer();
  if (r.chat) {
    if (!tok->chat_template()) return Status::InvalidArgument("messages: the model has no chat template");
    QUILT_ASSIGN_OR_RETURN(std::string rendered, tok->apply_chat_template(r.messages, /*add_generation_prompt=*/true));
    return tok->encode(rendered, /*add_special_tokens=*/false);
  }
  if (r.prompt_text) {
    *text = *r.prompt_text;
    return tok->encode(*r.prompt_text, /*add_special_tokens=*/true);
  }
  *text = tok->decode(r.prompt_ids);
  return r.prompt_ids;
}

// The part of a completion after its adapter is known: tokenize, bound, admit, submit. Runs on
// the I/O thread for the base model and hot adapters, on a registry loader thread after a cold
// adapter was read from storage there (ResponseWriter and the platform are thread-safe).
void continue_completion(Platform& p, bool chat, CompletionRequest r, CompletionCall::Setup setup,
                         tenants::Tenant tenant, std::shared_ptr<ResponseWriter> w) {
  Result<std::vector<int32_t>> ids = prompt_tokens(p, r, &setup.prompt_text);
  if (!ids.ok()) return send_error(*w, ids.status(), chat ? "messages" : "prompt");
  setup.prompt_ids = std::move(ids).value();
  if (setup.prompt_ids.empty()) return send_error(*w, Status::InvalidArgument("prompt: must not be empty"), "prompt");
  // The model's context, or --max-model-len when the server set a shorter one.
  const int64_t context = p.engine->max_model_len();
  const int64_t room = context - static_cast<int64_t>(setup.prompt_ids.size());
  if (room < 1) {
    return send_error(*w, Status::InvalidArgument("prompt: " + std::to_string(setup.prompt_ids.size()) +
                                                  " tokens leave no room in the model's context of " +
                                                  std::to_string(context)), "prompt");
  }
  // Chat without max_tokens may use the rest of the context, as OpenAI's API does: the engine
  // admits by what a request needs now (its prompt and a block), not by this bound.
  if (chat && !r.max_tokens_given) r.sampling.max_tokens = static_cast<int32_t>(room);

  setup.reserved_tokens = (static_cast<int64_t>(setup.prompt_ids.size()) + r.sampling.max_tokens) * r.n;
  tenants::Limiter::Decision d = p.limiter->admit(tenant.id, tenant.limits, setup.reserved_tokens);
  if (!d.admitted) {
    return send_error(*w, 429, "tenant over its limit: " + d.reason, "rate_limit_error", "",
                      {{"Retry-After", std::to_string(d.retry_after_s)}});
  }
  setup.request = std::move(r);
  setup.tenant = std::move(tenant);
  auto call = std::make_shared<CompletionCall>(p, std::move(w), std::move(setup));
  call->start();
}

void handle_completion(Platform& p, bool chat, HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
  auto tenant = authenticate_tenant(p, req, *w);
  if (!tenant) return;
  if (req.access) req.access->set_tenant(tenant->id);
  w = with_rate_limit_headers(p, *tenant, std::move(w));
  if (!require_json(req, *w)) return;
  if (p.draining) {
    send_error(*w, 503, "the server is shutting down", "overloaded_error", "", {{"Retry-After", "5"}});
    return;
  }
  std::string param;
  Result<CompletionRequest> parsed = parse_completion_request(req.body, chat, &param);
  if (!parsed.ok()) return send_error(*w, parsed.status(), param);
  CompletionRequest r = std::move(parsed).value();

  // The adapter: the route's {adapter}, else `model` unless it names the base model.
  CompletionCall::Setup setup;
  setup.access = req.access;
  std::string ref = req.params.count("adapter") ? req.params.at("adapter") : r.model;
  if (!req.params.count("adapter") && r.model.empty()) {
    return send_error(*w, Status::InvalidArgument("model: is required"), "model");
  }
  if (ref == p.model_id) {
    setup.model_name = p.model_id;
    return continue_completion(p, chat, std::move(r), std::move(setup), std::move(*tenant), std::move(w));
  }
  // A cold adapter is read from storage and converted on a registry loader thread, never on this
  // I/O thread; the request goes on from there.
  struct Pending {
    CompletionRequest request;
    CompletionCall::Setup setup;
    tenants::Tenant tenant;
    std::shared_ptr<ResponseWriter> writer;
  };
  const std::string tenant_id = tenant->id;
  auto pending = std::make_shared<Pending>(
      Pending{std::move(r), std::move(setup), std::move(*tenant), std::move(w)});
  p.registry->resolve_async(
      ref, tenant_id, [&p, chat, ref, pending](Result<adapters::ResolvedAdapter> resolved) {
        if (!resolved.ok()) return send_error(*pending->writer, resolved.status(), "model");
        pending->setup.adapter = std::move(resolved).value();
        pending->setup.model_name = ref;
        continue_completion(p, chat, std::move(pending->request), std::move(pending->setup),
                            std::move(pending->tenant), std::move(pending->writer));
      });
}

}  // namespace

Handler metered(Platform& p, const std::string& route, Handler handler) {
  return [&p, route, handler = std::move(handler)](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    handler(req, std::make_shared<MeteredWriter>(std::move(w), *p.metrics, route));
  };
}

void add_openai_routes(Router& router, Platform& p) {
  auto route = [&](const std::string& method, const std::string& path, Handler h) {
    router.add(method, path, metered(p, path, std::move(h)));
  };
  add_openapi_route(router);  // public, on the port that serves /v1
  route("GET", "/v1/models", [&p](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    handle_models(p, req, std::move(w));
  });
  route("GET", "/v1/models/{model}", [&p](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    handle_model(p, req, std::move(w));
  });
  for (bool chat : {false, true}) {
    const std::string suffix = chat ? "/chat/completions" : "/completions";
    Handler h = [&p, chat](HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
      handle_completion(p, chat, req, std::move(w));
    };
    route("POST", "/v1" + suffix, h);
    route("POST", "/v1/adapters/{adapter}" + suffix, h);
  }
}

}  // namespace quilt::gateway
