using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace RinServe.Deploy.Tests;

public sealed class ManifestTests
{
    private static IReadOnlyList<K8sObject> Base => Manifests.Rendered(Manifests.Base);
    private static IEnumerable<K8sObject> Workloads => Base.Where(o => o.Kind is "Deployment" or "StatefulSet");
    private static K8sObject Api => Manifests.One(Manifests.Base, "Deployment", "rinserve-api");
    private static K8sObject Worker => Manifests.One(Manifests.Base, "Deployment", "rinserve-worker");

    [Fact]
    public void Every_yaml_document_under_k8s_parses_with_a_kind_and_a_name()
    {
        Assert.NotEmpty(Manifests.All);
        foreach (var o in Manifests.All)
        {
            Assert.False(string.IsNullOrEmpty(o.Kind), $"{o.File}: a document without kind");
            if (o.Kind != "Kustomization")
            {
                Assert.False(string.IsNullOrEmpty(o.Name), $"{o.File}: {o.Kind} without metadata.name");
                Assert.False(string.IsNullOrEmpty(o.Node.Str("apiVersion")), $"{o}: no apiVersion");
            }
        }
    }

    [Fact]
    public void Both_kustomizations_render_with_kubectl_into_the_objects_a_cluster_gets()
    {
        string[] Kinds(string dir) => Manifests.Rendered(dir).Select(o => $"{o.Kind}/{o.Name}").Order(StringComparer.Ordinal).ToArray();
        string[] common =
        [
            "ConfigMap/rinserve-config", "Deployment/rinserve-api", "Deployment/rinserve-worker",
            "HorizontalPodAutoscaler/rinserve-api", "Namespace/rinserve", "PodDisruptionBudget/rinserve-api",
            "PodDisruptionBudget/rinserve-worker", "Service/rinserve-api", "Service/rinserve-redis", "StatefulSet/rinserve-redis",
        ];
        Assert.Equal(common.Append("ScaledObject/rinserve-worker").Append("TriggerAuthentication/rinserve-redis").Order(StringComparer.Ordinal), Kinds(Manifests.Base));
        Assert.Equal(common.Order(StringComparer.Ordinal), Kinds(Manifests.CpuOnly));
    }

    [Fact]
    public void Every_object_carries_the_app_name_and_a_component_label()
    {
        foreach (var o in Base)
        {
            Assert.Equal("rinserve", o.Labels.GetValueOrDefault("app.kubernetes.io/name"));
            Assert.False(string.IsNullOrEmpty(o.Labels.GetValueOrDefault("app.kubernetes.io/component")), $"{o}: no component label");
        }
        foreach (var w in Workloads)
        {
            Assert.Equal(w.Labels["app.kubernetes.io/component"], w.PodLabels.GetValueOrDefault("app.kubernetes.io/component"));
            Assert.Equal("rinserve", w.PodLabels.GetValueOrDefault("app.kubernetes.io/name"));
        }
    }

    [Fact]
    public void Selectors_match_the_pods_of_exactly_one_workload()
    {
        foreach (var w in Workloads)
        {
            Assert.True(Matches(w.Node.StrMap("spec.selector.matchLabels"), w.PodLabels), $"{w}: selector does not match its own pod labels");
        }
        foreach (var selecting in Base.Where(o => o.Kind is "Service" or "PodDisruptionBudget"))
        {
            var selector = selecting.Kind == "Service" ? selecting.Node.StrMap("spec.selector") : selecting.Node.StrMap("spec.selector.matchLabels");
            Assert.NotEmpty(selector);
            Assert.Single(Workloads, w => Matches(selector, w.PodLabels));
        }
        foreach (var set in Workloads.Where(w => w.Kind == "StatefulSet"))
        {
            var service = Base.Single(o => o.Kind == "Service" && o.Name == set.Node.Str("spec.serviceName"));
            Assert.Equal("None", service.Node.Str("spec.clusterIP"));
        }
    }

    [Fact]
    public void Service_target_ports_are_ports_their_pods_declare()
    {
        foreach (var service in Base.Where(o => o.Kind == "Service"))
        {
            var workload = Workloads.Single(w => Matches(service.Node.StrMap("spec.selector"), w.PodLabels));
            var declared = workload.Containers.SelectMany(c => c.Maps("ports")).SelectMany(p => new[] { p.Str("name"), p.Str("containerPort") }).ToHashSet();
            foreach (var port in service.Node.Maps("spec.ports"))
            {
                Assert.Contains(port.Str("targetPort"), declared);
            }
        }
    }

    [Fact]
    public void Probes_and_scrape_annotations_ask_routes_the_app_maps_on_a_declared_port()
    {
        foreach (var deployment in Base.Where(o => o.Kind == "Deployment"))
        {
            var container = Assert.Single(deployment.Containers);
            var ports = container.Maps("ports").ToArray();
            var probes = new[] { "startupProbe", "livenessProbe", "readinessProbe" }.Select(p => container.Get(p)).OfType<YamlMappingNode>().ToArray();
            Assert.Equal(3, probes.Length);
            foreach (var probe in probes)
            {
                Assert.Contains(probe.Str("httpGet.path") ?? "", Repo.AppRoutes);
                Assert.Contains(ports, p => p.Str("name") == probe.Str("httpGet.port") || p.Str("containerPort") == probe.Str("httpGet.port"));
            }
            Assert.Equal("/healthz/live", container.Str("livenessProbe.httpGet.path"));
            Assert.Equal("/healthz/ready", container.Str("readinessProbe.httpGet.path"));

            var annotations = deployment.Node.StrMap("spec.template.metadata.annotations");
            Assert.Contains(annotations["prometheus.io/path"], Repo.AppRoutes);
            Assert.Contains(ports, p => p.Str("containerPort") == annotations["prometheus.io/port"]);
        }
    }

    [Fact]
    public void Api_runs_two_or_more_replicas_behind_a_load_balancer_with_a_cpu_autoscaler()
    {
        Assert.True(int.Parse(Api.Node.Str("spec.replicas")!) >= 2);
        var service = Base.Single(o => o.Kind == "Service" && Matches(o.Node.StrMap("spec.selector"), Api.PodLabels));
        Assert.Equal("LoadBalancer", service.Node.Str("spec.type"));

        var hpa = Base.Single(o => o.Kind == "HorizontalPodAutoscaler");
        Assert.Equal(("Deployment", Api.Name), (hpa.Node.Str("spec.scaleTargetRef.kind"), hpa.Node.Str("spec.scaleTargetRef.name")));
        Assert.True(int.Parse(hpa.Node.Str("spec.minReplicas")!) >= 2);
        Assert.Equal("cpu", Assert.Single(hpa.Node.Maps("spec.metrics")).Str("resource.name"));

        var container = Assert.Single(Api.Containers);
        Assert.NotNull(container.Get("resources.requests.cpu"));
        Assert.NotNull(container.Get("resources.limits.memory"));
    }

    [Fact]
    public void Images_are_the_dockerfile_targets_the_roles_need_on_the_gpu_path()
    {
        Assert.Equal("rinserve:cpu", Assert.Single(Api.Containers).Str("image"));
        var worker = Assert.Single(Worker.Containers);
        Assert.Equal("rinserve:cuda", worker.Str("image"));
        foreach (var tag in new[] { "cpu", "cuda" })
        {
            Assert.Equal(tag, Dockerfile.InRepo.Stage(tag).Name);
        }

        Assert.Equal("1", (worker.Get("resources.limits")?.Child("nvidia.com/gpu") as YamlScalarNode)?.Value);
        Assert.NotEmpty(Worker.PodSpec!.StrMap("nodeSelector"));
        Assert.Contains(Worker.PodSpec!.Maps("tolerations"), t => t.Str("key") == "nvidia.com/gpu");
        Assert.Contains(("Onnx__ExecutionProvider", (string?)"cuda"), worker.Env());
    }

    [Fact]
    public void Cpu_only_overlay_runs_workers_on_the_cpu_image_without_gpu_or_keda()
    {
        var overlay = Manifests.Rendered(Manifests.CpuOnly);
        var worker = Manifests.One(Manifests.CpuOnly, "Deployment", "rinserve-worker");
        var container = Assert.Single(worker.Containers);
        Assert.Equal("rinserve:cpu", container.Str("image"));
        Assert.Equal("cpu", Dockerfile.InRepo.Stage("cpu").Name);
        Assert.Null(worker.PodSpec!.Get("nodeSelector"));
        Assert.Null(worker.PodSpec!.Get("tolerations"));
        Assert.Null(container.Get("resources.limits")?.Child("nvidia.com/gpu"));
        Assert.NotNull(container.Get("resources.limits.memory"));
        Assert.Contains(("Onnx__ExecutionProvider", (string?)"cpu"), container.Env());
        Assert.DoesNotContain(overlay, o => o.Node.Str("apiVersion")!.StartsWith("keda.sh/", StringComparison.Ordinal));

        // Everything else is the base, unchanged: the API, Redis, the probes and ports of the worker.
        var baseWorker = Assert.Single(Worker.Containers);
        foreach (var path in new[] { "ports", "startupProbe", "livenessProbe", "readinessProbe", "envFrom" })
        {
            Assert.Equal(Yaml(baseWorker.Get(path)), Yaml(container.Get(path)));
        }
        foreach (var same in overlay.Where(o => o.Name != "rinserve-worker"))
        {
            Assert.Equal(Yaml(Base.Single(b => b.Kind == same.Kind && b.Name == same.Name).Node), Yaml(same.Node));
        }
    }

    [Fact]
    public void Redis_keeps_an_append_only_file_on_a_claimed_volume()
    {
        var redis = Workloads.Single(w => w.Kind == "StatefulSet");
        var container = Assert.Single(redis.Containers);
        var args = string.Join(' ', container.Seq("args"));
        Assert.Contains("--appendonly yes", args, StringComparison.Ordinal);
        var dir = Regex.Match(args, @"--dir (\S+)").Groups[1].Value;
        var mount = container.Maps("volumeMounts").Single(m => m.Str("mountPath") == dir);
        Assert.Contains(redis.Node.Maps("spec.volumeClaimTemplates"), t => t.Str("metadata.name") == mount.Str("name"));
        // KEDA's lag trigger reads XINFO GROUPS lag, which Redis reports from 7.0 on.
        var version = Regex.Match(container.Str("image")!, @"^redis:(\d+)").Groups[1].Value;
        Assert.True(int.Parse(version) >= 7, container.Str("image"));
        Assert.Contains("--requirepass $(REDIS_PASSWORD)", args, StringComparison.Ordinal);
    }

    [Fact]
    public void No_secret_values_are_applied_and_every_secret_reference_is_documented_in_the_example()
    {
        var applied = new[] { Manifests.Base, Manifests.CpuOnly }.SelectMany(Manifests.ResourceFiles).ToHashSet();
        Assert.DoesNotContain(applied.SelectMany(Manifests.Load), o => o.Kind == "Secret");
        Assert.DoesNotContain(Manifests.Base + "/secret.example.yaml", applied);

        var examples = Manifests.Load(Manifests.Base + "/secret.example.yaml");
        Assert.All(examples, s => Assert.Equal("Secret", s.Kind));
        Assert.All(examples.SelectMany(s => s.Node.StrMap("stringData").Values), v => Assert.StartsWith("REPLACE_WITH_", v, StringComparison.Ordinal));
        bool Documented(string name, string? key) =>
            examples.Any(s => s.Name == name && (key is null || s.Node.StrMap("stringData").ContainsKey(key)));

        foreach (var container in Workloads.SelectMany(w => w.Containers))
        {
            foreach (var reference in container.Maps("env").Select(e => e.Get("valueFrom.secretKeyRef")).OfType<YamlMappingNode>())
            {
                Assert.True(Documented(reference.Str("name")!, reference.Str("key")), $"secret {reference.Str("name")}/{reference.Str("key")} is not in secret.example.yaml");
            }
            foreach (var reference in container.Maps("envFrom").Select(e => e.Get("secretRef")).OfType<YamlMappingNode>())
            {
                Assert.True(Documented(reference.Str("name")!, null));
            }
        }
        foreach (var auth in Base.Where(o => o.Kind == "TriggerAuthentication"))
        {
            Assert.All(auth.Node.Maps("spec.secretTargetRef"), r => Assert.True(Documented(r.Str("name")!, r.Str("key"))));
        }
    }

    [Fact]
    public void Everything_lives_in_the_namespace_the_kustomization_sets()
    {
        var ns = Manifests.Kustomization(Manifests.Base).Str("namespace");
        Assert.Equal("rinserve", ns);
        foreach (var dir in new[] { Manifests.Base, Manifests.CpuOnly })
        {
            var rendered = Manifests.Rendered(dir);
            Assert.Equal(ns, rendered.Single(o => o.Kind == "Namespace").Name);
            Assert.All(rendered.Where(o => o.Kind != "Namespace"), o => Assert.Equal(ns, o.Node.Str("metadata.namespace")));
        }
        Assert.All(Manifests.Load(Manifests.Base + "/secret.example.yaml"), s => Assert.Equal(ns, s.Node.Str("metadata.namespace")));
    }

    private static string Yaml(YamlNode? node)
    {
        if (node is null)
        {
            return "";
        }
        var writer = new StringWriter();
        new YamlStream(new YamlDocument(node)).Save(writer, assignAnchors: false);
        return writer.ToString();
    }

    private static bool Matches(IReadOnlyDictionary<string, string> selector, IReadOnlyDictionary<string, string> labels) =>
        selector.Count > 0 && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    private static bool IsNull(YamlNode? node) => node is YamlScalarNode { Value: "null" or "~" or "" };
}
