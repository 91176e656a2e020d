using System.Net;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using RinServe.Jobs;
using RinServe.Onnx;
using RinServe.WebApi.Hosting;
using StackExchange.Redis;
using YamlDotNet.RepresentationModel;

namespace RinServe.Deploy.Tests;

/// <summary>The settings the manifests and the image give the app are settings the app has, with values it accepts.</summary>
public sealed partial class ConfigurationTests
{
    /// <summary>Options sections: every options class with a <c>Section</c> constant, plus Onnx, which the host binds by name.</summary>
    private static readonly IReadOnlyDictionary<string, Type> Sections =
        new[] { typeof(RinServeOptions).Assembly, typeof(JobsOptions).Assembly }
            .SelectMany(a => a.GetExportedTypes())
            .Select(t => (Type: t, Field: t.GetField("Section", BindingFlags.Public | BindingFlags.Static)))
            .Where(x => x.Field is { IsLiteral: true })
            .ToDictionary(x => (string)x.Field!.GetRawConstantValue()!, x => x.Type, StringComparer.OrdinalIgnoreCase)
            .Append(new KeyValuePair<string, Type>("Onnx", typeof(OnnxModelOptions)))
            .ToDictionary(StringComparer.OrdinalIgnoreCase);

    private static K8sObject ConfigMap => Manifests.One(Manifests.Base, "ConfigMap", "rinserve-config");

    public static readonly TheoryData<string, string, string> Deployments = new()
    {
        { Manifests.Base, "rinserve-api", "api" },
        { Manifests.Base, "rinserve-worker", "worker" },
        { Manifests.CpuOnly, "rinserve-worker", "worker" },
    };

    [Fact]
    public void Every_configuration_key_set_for_the_app_names_an_option_it_binds()
    {
        var keys = AllSettings().ToArray();
        Assert.Contains(keys, k => k.Key == "RinServe__Role");
        foreach (var (key, value, where) in keys.Where(k => k.Key.Contains("__", StringComparison.Ordinal)))
        {
            var section = key.Split("__")[0];
            if (section == "Logging")
            {
                Assert.StartsWith("Logging__LogLevel__", key, StringComparison.Ordinal);
                continue;
            }
            Assert.True(Sections.TryGetValue(section, out var type), $"{where}: {key} is in no options section the app binds ({string.Join(", ", Sections.Keys)})");
            // A placeholder secret is not a value; the key is what counts.
            var checkedValue = value is null || value.StartsWith("REPLACE_WITH_", StringComparison.Ordinal) ? SampleValue(type, key) : value;
            var config = new ConfigurationBuilder().AddInMemoryCollection([new(key.Replace("__", ":", StringComparison.Ordinal), checkedValue)]).Build();
            var error = Record.Exception(() => config.GetSection(section).Get(type, o => o.ErrorOnUnknownConfiguration = true));
            Assert.True(error is null, $"{where}: {key}={checkedValue}: {error?.Message}");
        }
    }

    [Theory]
    [MemberData(nameof(Deployments))]
    public void Deployment_environment_passes_the_apps_own_option_validation(string kustomization, string deployment, string role)
    {
        var env = EffectiveEnv(kustomization, deployment);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Configuration.AddJsonFile(Repo.PathOf("appsettings.json"));
        builder.Configuration.AddInMemoryCollection(env.Select(kv => new KeyValuePair<string, string?>(kv.Key.Replace("__", ":", StringComparison.Ordinal), kv.Value)));
        var settings = builder.AddRinServeOptions();
        builder.AddJobs(settings);
        using var services = builder.Services.BuildServiceProvider();

        // Reading each options value runs the app's validation (data annotations, IValidatableObject, host rules).
        foreach (var type in Sections.Values)
        {
            var options = services.GetRequiredService(typeof(IOptions<>).MakeGenericType(type));
            var value = Record.Exception(() => options.GetType().GetProperty("Value")!.GetValue(options));
            Assert.True(value is null, $"{deployment} ({kustomization}): {value?.InnerException?.Message ?? value?.Message}");
        }

        var shape = services.GetRequiredService<IOptions<RinServeOptions>>().Value;
        Assert.Equal(Enum.Parse<ServiceRole>(role, ignoreCase: true), shape.Role);
        var redis = ConfigurationOptions.Parse(shape.Redis);
        var endpoint = Assert.IsType<DnsEndPoint>(Assert.Single(redis.EndPoints));
        var service = Manifests.One(Manifests.Base, "Service", "rinserve-redis");
        Assert.Equal(service.Name, endpoint.Host);
        Assert.Equal(service.Node.Maps("spec.ports").Single().Str("port"), endpoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(SecretPlaceholder, redis.Password);
    }

    [Fact]
    public void Config_map_with_the_deployments_and_image_sets_every_option_the_app_has()
    {
        var set = AllSettings().Select(s => s.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);
        // The drills' hooks (a step gate) are off unless set, and a deployment must never set them.
        Assert.DoesNotContain(set, key => key.StartsWith(TestingOptions.Section + "__", StringComparison.OrdinalIgnoreCase));
        foreach (var (section, type) in Sections.Where(s => s.Value != typeof(TestingOptions)))
        {
            foreach (var property in type.GetProperties().Where(p => p.CanWrite))
            {
                var key = $"{section}__{property.Name}";
                Assert.True(set.Contains(key) || set.Any(k => k.StartsWith(key + "__", StringComparison.OrdinalIgnoreCase)),
                    $"{key} is set nowhere in k8s/ or the Dockerfile: add it to k8s/base/configmap.yaml");
            }
        }
    }

    [Fact]
    public void Config_map_starts_from_the_defaults_in_appsettings_json()
    {
        var appsettings = new ConfigurationBuilder().AddJsonFile(Repo.PathOf("appsettings.json")).Build();
        foreach (var (key, value) in ConfigMap.Node.StrMap("data"))
        {
            var configured = appsettings[key.Replace("__", ":", StringComparison.Ordinal)];
            Assert.True(configured is not null, $"{key} is in the ConfigMap but not in appsettings.json");
            Assert.Equal(configured, value, ignoreCase: true);
        }
    }

    [Fact]
    public void Role_values_are_roles_the_app_knows()
    {
        var roles = AllSettings().Where(s => s.Key == "RinServe__Role").ToArray();
        Assert.NotEmpty(roles);
        Assert.All(roles, r => Assert.True(Enum.TryParse<ServiceRole>(r.Value, ignoreCase: true, out _), $"{r.Where}: RinServe__Role={r.Value}"));
    }

    private const string SecretPlaceholder = "secret-from-kubernetes";

    /// <summary>Every setting given anywhere: ConfigMap, container env (base and overlay patches), the example secrets, the image.</summary>
    private static IEnumerable<(string Key, string? Value, string Where)> AllSettings()
    {
        foreach (var (key, value) in ConfigMap.Node.StrMap("data"))
        {
            yield return (key, value, ConfigMap.ToString());
        }
        var containers = new[] { Manifests.Base, Manifests.CpuOnly }.SelectMany(Manifests.Rendered)
            .Where(o => o.Kind is "Deployment" or "StatefulSet").SelectMany(o => o.Containers.Select(c => (Object: o, Container: c)));
        foreach (var (o, container) in containers)
        {
            foreach (var (name, value) in container.Env())
            {
                yield return (name, value, o.ToString());
            }
        }
        foreach (var secret in Manifests.Load(Manifests.Base + "/secret.example.yaml"))
        {
            foreach (var (key, value) in secret.Node.StrMap("stringData"))
            {
                yield return (key, value, secret.ToString());
            }
        }
        foreach (var stage in new[] { "cpu", "cuda" }.Select(Dockerfile.InRepo.Stage))
        {
            foreach (var (key, value) in stage.Env)
            {
                yield return (key, value, "Dockerfile target " + stage.Name);
            }
        }
    }

    /// <summary>
    /// What the container sees, in the order the app's configuration layers it: the ConfigMap (envFrom), then
    /// the container's env as kustomize renders it (overlay patches applied), secrets as a placeholder, $(VAR) expanded.
    /// </summary>
    private static IReadOnlyDictionary<string, string> EffectiveEnv(string kustomization, string deployment)
    {
        var container = Assert.Single(Manifests.One(kustomization, "Deployment", deployment).Containers);
        Assert.Contains(container.Maps("envFrom"), e => e.Str("configMapRef.name") == ConfigMap.Name);
        var env = new Dictionary<string, string>(ConfigMap.Node.StrMap("data"), StringComparer.Ordinal);
        foreach (var entry in container.Maps("env"))
        {
            var value = entry.Get("valueFrom.secretKeyRef") is YamlMappingNode ? SecretPlaceholder : entry.Str("value") ?? "";
            env[entry.Str("name")!] = VariableReference().Replace(value, m => env.GetValueOrDefault(m.Groups[1].Value, m.Value));
        }
        return env;
    }

    private static string SampleValue(Type options, string key) =>
        options == typeof(AuthOptions) ? new string('a', 64) : "x";

    [GeneratedRegex(@"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex VariableReference();
}
