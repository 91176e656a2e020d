using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using RinServe.WebApi.Hosting;

namespace RinServe.WebApi.Tests;

public sealed class ConsoleLogFormatTests
{
    [Theory]
    // configured, in a container, Development, stdout redirected -> formatter
    [InlineData(null, false, false, false, "simple")] // `dotnet run` in a terminal
    [InlineData(null, false, true, false, "simple")]
    [InlineData(null, false, true, true, "simple")]   // Development, even piped through a tool
    [InlineData(null, false, false, true, "json")]    // output collected by a machine
    [InlineData(null, true, false, false, "json")]    // a container
    [InlineData(null, true, true, true, "json")]
    [InlineData("", true, false, false, "json")]      // empty counts as not set
    [InlineData("simple", true, false, true, "simple")] // an explicit setting wins
    [InlineData("json", false, true, false, "json")]
    [InlineData("systemd", false, false, false, "systemd")]
    public void Plain_for_people_json_for_machines_and_the_configured_formatter_wins(
        string? configured, bool inContainer, bool isDevelopment, bool outputRedirected, string expected) =>
        Assert.Equal(expected, ConsoleLogFormat.Choose(configured, inContainer, isDevelopment, outputRedirected));

    [Theory]
    [InlineData("json")]
    [InlineData("simple")]
    public void The_host_applies_the_configured_formatter(string configured)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Development" });
        builder.Configuration.AddInMemoryCollection([new(ConsoleLogFormat.ConfigurationKey, configured)]);
        builder.AddConsoleLogFormat();
        using var services = builder.Services.BuildServiceProvider();
        Assert.Equal(configured, services.GetRequiredService<IOptions<ConsoleLoggerOptions>>().Value.FormatterName);
    }

    [Theory]
    [InlineData("yyyy-MM-ddTHH:mm:ss.fffZ", "yyyy-MM-ddTHH:mm:ss.fffZ ")]
    [InlineData("HH:mm:ss ", "HH:mm:ss ")]
    [InlineData(null, null)]
    public void Plain_lines_separate_the_timestamp_from_the_level(string? configured, string? expected) =>
        Assert.Equal(expected, ConsoleLogFormat.SeparatedTimestamp(configured));
}
