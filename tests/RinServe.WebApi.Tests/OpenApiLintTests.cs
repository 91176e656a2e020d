using System.Diagnostics;
using RinServe.Testing;

namespace RinServe.WebApi.Tests;

/// <summary>The OpenAPI document as real tools read it: Redocly CLI's lint with the recommended rules (redocly.yaml).</summary>
public sealed class OpenApiLintTests(InProcessService service) : IClassFixture<InProcessService>
{
    /// <summary>Where ./test.sh installs the CLI (npm, .tools/redocly).</summary>
    private static string Redocly => Path.Combine(TestPaths.RepoRoot, ".tools", "redocly", "node_modules", ".bin", "redocly");

    [Fact]
    public async Task The_document_passes_redocly_lint_with_no_error_and_no_warning()
    {
        Assert.True(File.Exists(Redocly), $"{Redocly} is missing: ./test.sh installs Redocly CLI (npm) before the tests");
        var document = Path.Combine(Path.GetTempPath(), $"rinserve-openapi-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(document, await service.Factory.CreateClient().GetStringAsync("/swagger/v1/swagger.json"));
        try
        {
            var info = new ProcessStartInfo(Redocly)
            {
                WorkingDirectory = TestPaths.RepoRoot, // redocly.yaml there: the recommended rules
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var arg in new[] { "lint", document, "--format=json", "--max-problems=100" })
            {
                info.ArgumentList.Add(arg);
            }
            info.Environment["REDOCLY_TELEMETRY"] = "off";
            info.Environment["REDOCLY_SUPPRESS_UPDATE_NOTICE"] = "true";
            using var lint = Process.Start(info)!;
            var output = lint.StandardOutput.ReadToEndAsync();
            var errors = lint.StandardError.ReadToEndAsync();
            await lint.WaitForExitAsync();
            var json = await output;
            Assert.True(lint.ExitCode == 0, $"redocly lint exit {lint.ExitCode}:\n{json}\n{await errors}");
            using var report = System.Text.Json.JsonDocument.Parse(json);
            var totals = report.RootElement.GetProperty("totals");
            Assert.True(totals.GetProperty("errors").GetInt32() == 0 && totals.GetProperty("warnings").GetInt32() == 0,
                $"redocly lint: {totals}\n{report.RootElement.GetProperty("problems")}");
        }
        finally
        {
            File.Delete(document);
        }
    }
}
