// Security and failover on the device link (issue 8), against the real edge_server:
//  - TLS on and off both pass the split-equals-local test (EdgeClient and the device_client
//    binary), with an auth token required;
//  - a missing or wrong token is refused UNAUTHENTICATED before any model is named or run;
//  - TLS mismatches (plain client to a TLS server and the reverse, an untrusted CA, a wrong
//    server name, bad certificate files) fail with a clear error and the server keeps serving;
//  - failover: an EdgeClient or device_client given several edge addresses reaches a live one
//    and avoids a dead one while it is in back-off.
// Certificates: tests/data/tls (scripts/make_certs.sh).
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/model_zoo.h"
#include "common/tensor_wire.h"
#include "common/tls.h"
#include "device/edge_client.h"
#include "tests/integration/child_process.h"
#include "tests/integration/test_models.h"

namespace splitinfer {
namespace {

using json = nlohmann::json;
using testing::ChildProcess;
using testing::EdgeServerProcess;
using namespace std::chrono_literals;

const std::string kTlsDir = std::string(SPLITINFER_SOURCE_DIR) + "/tests/data/tls/";
const std::string kToken = "s3cret-token-for-tests";

// A file holding `text` under the test's temporary directory.
std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path =
      ::testing::TempDir() + "tls_test_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

std::vector<std::string> ServerArgs(bool tls, const std::string& token_file,
                                    const std::vector<std::string>& models = {"mlp", "resnet18"}) {
  std::string list;
  for (auto& m : models) list += (list.empty() ? "" : ",") + m;
  std::vector<std::string> args{"--models", list, "--cpu"};
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  if (tls) {
    args.insert(args.end(),
                {"--tls-cert", kTlsDir + "server.pem", "--tls-key", kTlsDir + "server.key"});
  }
  if (!token_file.empty()) args.insert(args.end(), {"--auth-token-file", token_file});
  return args;
}

EdgeClientOptions ClientOptions(int port, bool tls, const std::string& token) {
  EdgeClientOptions o;
  o.port = static_cast<uint16_t>(port);
  o.connect_timeout = 5s;
  o.io_timeout = 30s;
  o.tls = tls;
  if (tls) o.tls_ca_file = kTlsDir + "ca.pem";
  o.auth_token = token;
  return o;
}

// A zero input for the test mlp (one sample).
at::Tensor MlpInput() {
  auto model = BuildZooModel("mlp", 1, testing::SmallZoo());
  std::vector<int64_t> shape{1};
  if (model.ok())
    shape.insert(shape.end(), (*model)->input_shape().begin(), (*model)->input_shape().end());
  return torch::zeros(shape);
}

uint16_t ClosedPort() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();  // closed when `a` goes out of scope
}

// One inference of `model` split at every boundary through `client`; each output must equal
// the whole model run locally.
void ExpectEverySplitMatchesLocal(EdgeClient& client, const std::string& model_name) {
  auto model = BuildZooModel(model_name, 1, testing::SmallZoo());
  ASSERT_TRUE(model.ok()) << model.status();
  const SplitModel& m = **model;
  torch::manual_seed(11);
  std::vector<int64_t> shape{2};
  shape.insert(shape.end(), m.input_shape().begin(), m.input_shape().end());
  const at::Tensor x = torch::randn(shape);
  c10::InferenceMode guard;
  const at::Tensor ref = m.RunRange(x, 0, m.num_units());
  for (size_t k = 0; k < m.num_units(); ++k) {
    SCOPED_TRACE(model_name + " boundary " + std::to_string(k));
    wire::InferRequest req;
    req.set_request_id(1000 + k);
    req.set_model(model_name);
    req.set_model_version(1);
    req.set_boundary(static_cast<uint32_t>(k));
    ASSERT_TRUE(client.SendRequest(req, m.RunRange(x, 0, k)).ok());
    auto reply = client.ReadReply();
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(reply->status.ok()) << reply->status;
    EXPECT_EQ(reply->request_id, 1000 + k);
    ASSERT_EQ(reply->output.sizes(), ref.sizes());
    EXPECT_LE((reply->output - ref).abs().max().item<double>(), 1e-5);
  }
}

// The server still serves a well-behaved client (after a refused one).
void ExpectServes(int port, bool tls) {
  EdgeClient client(ClientOptions(port, tls, kToken));
  Status st = client.Connect();
  ASSERT_TRUE(st.ok()) << st;
  ExpectEverySplitMatchesLocal(client, "mlp");
}

class TlsOnOffTest : public ::testing::TestWithParam<bool> {};

TEST_P(TlsOnOffTest, SplitEqualsLocalWithATokenRequired) {
  const bool tls = GetParam();
  EdgeServerProcess server(ServerArgs(tls, WriteFile("token", kToken + "\n")));
  ASSERT_GT(server.port(), 0) << server.first_line();

  EdgeClient client(ClientOptions(server.port(), tls, kToken));
  Status st = client.Connect();
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(client.server_info().models_size(), 2);
  for (std::string model : {"mlp", "resnet18"}) ExpectEverySplitMatchesLocal(client, model);

  // The device_client binary: every split verified against the local model, all on the edge.
  std::vector<std::string> args{std::string(SPLITINFER_BIN_DIR) + "/device_client",
                                "--json",
                                "--server",
                                server.address(),
                                "--auth-token-file",
                                WriteFile("client_token", kToken),
                                "--model",
                                "mlp",
                                "--split",
                                "all",
                                "--requests",
                                "2",
                                "--verify"};
  for (auto& a : testing::SmallZooArgs()) args.push_back(a);
  if (tls) args.insert(args.end(), {"--tls", "--tls-ca", kTlsDir + "ca.pem"});
  ChildProcess device(args);
  size_t records = 0;
  for (auto& line : device.ReadAll(120s)) {
    auto r = json::parse(line, nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << line;
    SCOPED_TRACE(r.dump());
    EXPECT_TRUE(r["ok"].get<bool>());
    EXPECT_LE(r["max_abs_diff"].get<double>(), 1e-5);
    EXPECT_TRUE(r["fallback"].is_null());
    EXPECT_EQ(r["completed_on"], r["split"].get<size_t>() == 6 ? "local" : "edge");
    ++records;
  }
  EXPECT_EQ(device.Wait(), 0);
  EXPECT_EQ(records, 2u * 7u);
}

TEST_P(TlsOnOffTest, MissingOrWrongTokenIsRefusedBeforeAnyModelWork) {
  const bool tls = GetParam();
  EdgeServerProcess server(ServerArgs(tls, WriteFile("token2", kToken)));
  ASSERT_GT(server.port(), 0) << server.first_line();

  for (const std::string& token : {std::string(), std::string("zq-bad-7"), kToken + "x"}) {
    SCOPED_TRACE("token '" + token + "'");
    EdgeClient client(ClientOptions(server.port(), tls, token));
    Status st = client.Connect();
    EXPECT_EQ(st.code(), StatusCode::kUnauthenticated) << st;
    EXPECT_NE(st.message().find(token.empty() ? "requires an auth token" : "wrong auth token"),
              std::string::npos)
        << st;
    if (!token.empty()) {
      EXPECT_EQ(st.message().find(token), std::string::npos) << "echoed";
    }
    EXPECT_FALSE(client.connected());
    EXPECT_EQ(client.server_info().models_size(), 0) << "a refused client learns no model";
    // The connection is closed: nothing can be sent on it.
    wire::InferRequest req;
    req.set_model("mlp");
    req.set_model_version(1);
    EXPECT_FALSE(client.SendRequest(req, MlpInput()).ok());
  }
  // An InferRequest pipelined right behind a refused Hello is never run: the server answers the
  // Hello UNAUTHENTICATED and closes the connection without reading further.
  std::shared_ptr<ssl::context> ctx;
  if (tls) ctx = *MakeClientTlsContext(kTlsDir + "ca.pem");
  BlockingConnection conn;
  ASSERT_TRUE(conn.Connect("127.0.0.1", static_cast<uint16_t>(server.port()), 5s, ctx.get()).ok());
  wire::Hello hello;
  hello.set_protocol_version(kProtocolVersion);
  hello.set_auth_token("zq-bad-7");
  wire::InferRequest req;
  req.set_request_id(77);
  req.set_model("mlp");
  req.set_model_version(1);
  const at::Tensor x = MlpInput();
  ASSERT_TRUE(conn.WriteFrame(MakeFrame(MessageType::kHello, hello), 5s).ok());
  ASSERT_TRUE(conn.WriteFrame(MakeTensorFrame(MessageType::kInferRequest, req, x), 5s).ok());
  FrameHeader header;
  std::string meta;
  ASSERT_TRUE(conn.ReadHeaderAndMeta(FrameLimits(), 5s, &header, &meta).ok());
  ASSERT_EQ(header.type, MessageType::kHelloReply);
  wire::HelloReply reply;
  ASSERT_TRUE(ParseMeta(meta, &reply).ok());
  EXPECT_EQ(reply.code(), wire::UNAUTHENTICATED);
  EXPECT_EQ(reply.models_size(), 0);
  Status next = conn.ReadHeaderAndMeta(FrameLimits(), 5s, &header, &meta);
  EXPECT_EQ(next.code(), StatusCode::kUnavailable) << "no InferReply: " << next;
  ExpectServes(server.port(), tls);
}

INSTANTIATE_TEST_SUITE_P(Tls, TlsOnOffTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "TlsOn" : "TlsOff"; });

TEST(TlsTest, MismatchesFailClearlyAndTheServerKeepsServing) {
  EdgeServerProcess tls_server(ServerArgs(true, ""));
  ASSERT_GT(tls_server.port(), 0) << tls_server.first_line();
  EdgeServerProcess plain_server(ServerArgs(false, ""));
  ASSERT_GT(plain_server.port(), 0) << plain_server.first_line();

  {  // A plain client to the TLS server: the server's TLS handshake fails on its Hello.
    EdgeClient client(ClientOptions(tls_server.port(), false, ""));
    Status st = client.Connect();
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st;
    EXPECT_NE(st.message().find("does it require TLS?"), std::string::npos) << st;
  }
  {  // A TLS client to the plain server: named as such, not blamed on the certificate.
    auto o = ClientOptions(plain_server.port(), true, "");
    o.connect_timeout = 3s;
    EdgeClient client(o);
    Status st = client.Connect();
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("TLS handshake"), std::string::npos) << st;
    EXPECT_NE(st.message().find("the server does not speak TLS"), std::string::npos) << st;
    EXPECT_EQ(st.message().find("certificate"), std::string::npos) << st;
  }
  {  // A CA that did not sign the server's certificate.
    auto o = ClientOptions(tls_server.port(), true, "");
    o.tls_ca_file = kTlsDir + "other_ca.pem";
    EdgeClient client(o);
    Status st = client.Connect();
    EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st;
    EXPECT_NE(st.message().find("certificate verify failed"), std::string::npos) << st;
  }
  {  // The right CA, but a name the certificate is not for.
    auto o = ClientOptions(tls_server.port(), true, "");
    o.tls_server_name = "edge.example.com";
    EdgeClient client(o);
    Status st = client.Connect();
    EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st;
    EXPECT_NE(st.message().find("certificate verify failed"), std::string::npos) << st;
  }
  {  // "localhost" is in the certificate too.
    auto o = ClientOptions(tls_server.port(), true, "");
    o.tls_server_name = "localhost";
    EdgeClient client(o);
    Status st = client.Connect();
    EXPECT_TRUE(st.ok()) << st;
  }
  {  // A CA file that does not exist: refused before connecting.
    auto o = ClientOptions(tls_server.port(), true, "");
    o.tls_ca_file = kTlsDir + "missing.pem";
    EdgeClient client(o);
    Status st = client.Connect();
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
    EXPECT_NE(st.message().find("missing.pem"), std::string::npos) << st;
  }
  {  // A peer that connects to the TLS port and sends nothing is dropped at the handshake
     // timeout; meanwhile others are served.
    asio::io_context io;
    tcp::socket idle(io);
    idle.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                               static_cast<uint16_t>(tls_server.port())));
    ExpectServes(tls_server.port(), true);
  }
  ExpectServes(tls_server.port(), true);
  ExpectServes(plain_server.port(), false);
}

TEST(TlsTest, BadCertificateFilesStopTheServerWithAClearError) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"--tls-cert", kTlsDir + "server.pem"}, "both"},
      {{"--tls-cert", kTlsDir + "nope.pem", "--tls-key", kTlsDir + "server.key"}, "nope.pem"},
      {{"--tls-cert", kTlsDir + "server.pem", "--tls-key", kTlsDir + "ca.pem"}, "ca.pem"},
      {{"--auth-token-file", kTlsDir + "no_such_token"}, "no_such_token"},
      {{"--auth-token-file", WriteFile("empty_token", "\n")}, "empty"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv{std::string(SPLITINFER_BIN_DIR) + "/edge_server",
                                  "--listen",
                                  "127.0.0.1:0",
                                  "--models",
                                  "mlp",
                                  "--cpu"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const std::string err = WriteFile("stderr", "");
    std::string cmd;
    for (auto& a : argv) cmd += "'" + a + "' ";
    cmd += "2>'" + err + "'";
    const int rc = std::system(cmd.c_str());
    std::ifstream in(err);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(cmd + "\n" + text);
    EXPECT_NE(rc, 0);
    EXPECT_NE(text.find(c.expect), std::string::npos);
  }
}

TEST(FailoverTest, EdgeClientReachesALiveServerAndAvoidsADeadOne) {
  EdgeServerProcess a(ServerArgs(false, "", {"mlp"}));
  EdgeServerProcess b(ServerArgs(false, "", {"mlp"}));
  ASSERT_GT(a.port(), 0);
  ASSERT_GT(b.port(), 0);
  const uint16_t dead = ClosedPort();

  {  // The first address is dead: the second one serves.
    auto o = ClientOptions(dead, false, "");
    o.fallbacks = {{"127.0.0.1", static_cast<uint16_t>(a.port())}};
    EdgeClient client(o);
    ASSERT_TRUE(client.Connect().ok());
    EXPECT_EQ(client.address().port, a.port());
    ExpectEverySplitMatchesLocal(client, "mlp");
    // The dead address is in back-off: a reconnect goes straight to the live one.
    client.Close();
    ASSERT_TRUE(client.Connect().ok());
    EXPECT_EQ(client.address().port, a.port());
  }
  {  // a, then b: a serves until it is killed, then b does; a is avoided afterwards.
    auto o = ClientOptions(a.port(), false, "");
    o.fallbacks = {{"127.0.0.1", static_cast<uint16_t>(b.port())}};
    o.failover_backoff = 60s;
    EdgeClient client(o);
    ASSERT_TRUE(client.Connect().ok());
    EXPECT_EQ(client.address().port, a.port());
    a.process().Kill(SIGKILL);
    a.process().Wait();
    wire::InferRequest req;
    req.set_model("mlp");
    req.set_model_version(1);
    Status sent = client.SendRequest(req, MlpInput());
    auto reply = client.ReadReply();
    EXPECT_FALSE(sent.ok() && reply.ok()) << "a is dead";
    client.Close();
    ASSERT_TRUE(client.Connect().ok());
    EXPECT_EQ(client.address().port, b.port());
    ExpectEverySplitMatchesLocal(client, "mlp");
    // MarkUnhealthy (e.g. b answered "draining"): with every address in back-off, the one
    // whose back-off ends first is tried first: a (dead, ends sooner) fails, then b serves.
    client.MarkUnhealthy();
    client.Close();
    ASSERT_TRUE(client.Connect().ok());
    EXPECT_EQ(client.address().port, b.port());
  }
  {  // Nobody listens: the error names every address tried.
    auto o = ClientOptions(dead, false, "");
    o.fallbacks = {{"127.0.0.1", ClosedPort()}};
    EdgeClient client(o);
    Status st = client.Connect();
    EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st;
    EXPECT_NE(st.message().find("no edge server reachable"), std::string::npos) << st;
    EXPECT_NE(st.message().find(std::to_string(dead)), std::string::npos) << st;
  }
}

TEST(FailoverTest, DeviceClientUsesTheNextServerInItsList) {
  EdgeServerProcess b(ServerArgs(false, "", {"mlp"}));
  ASSERT_GT(b.port(), 0);
  const std::string list = "127.0.0.1:" + std::to_string(ClosedPort()) + "," + b.address();
  std::vector<std::string> args{std::string(SPLITINFER_BIN_DIR) + "/device_client",
                                "--json",
                                "--server",
                                list,
                                "--model",
                                "mlp",
                                "--split",
                                "3",
                                "--requests",
                                "4",
                                "--verify"};
  for (auto& arg : testing::SmallZooArgs()) args.push_back(arg);
  ChildProcess device(args);
  size_t on_edge = 0;
  for (auto& line : device.ReadAll(120s)) {
    auto r = json::parse(line, nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << line;
    EXPECT_TRUE(r["ok"].get<bool>()) << line;
    on_edge += r["completed_on"] == "edge";
  }
  EXPECT_EQ(device.Wait(), 0);
  EXPECT_EQ(on_edge, 4u);
}

}  // namespace
}  // namespace splitinfer
