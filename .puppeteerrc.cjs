// Puppeteer must not download its own browser: this service uses the system Chromium (CHROME_PATH).
module.exports = { skipDownload: true };
